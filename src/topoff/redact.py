"""Credentials never reach people: every message, log line and file goes through :func:`redact`.

Passwords can hide in URLs (``postgresql://user:secret@host/db``, ``https://user:secret@host``),
in libpq ``key=value`` strings (``password=secret``, ``password='a b'``), in URL query
parameters (``?password=secret``) and in messages that libraries build from them. Each is
replaced by ``***``; the rest of the text stays as it was, so the message keeps its meaning.
"""

from __future__ import annotations

import re

MASK = "***"

# scheme://user:password@host  (the password runs to the '@'; it may hold a '/' that a
# careless URL did not percent-encode; the user part may be empty; a path made of a URL
# may have lost one of its slashes). Linear in the text's length, whatever it holds (a
# message may carry a value of megabytes): a scheme starts where no scheme character is
# before it, nothing is matched again after it failed (possessive), and only words holding
# an '@' are searched, up to their last '@' (:func:`_url_userinfo`).
_URL_USERINFO = re.compile(
    r"(?P<pre>(?<![A-Za-z0-9+.\-])[A-Za-z][A-Za-z0-9+.\-]*+:/{1,3}[^:/@\s]*+:)"
    r"(?P<pw>[^@\s]*+)@")
_WORD_WITH_AT = re.compile(r"(?<!\S)[^\s@]*+@\S*+")
# ?password=... or &password=... in a URL query (also sslpassword, passfile kept visible)
_QUERY = re.compile(r"(?P<pre>[?&](?:ssl)?password=)(?P<pw>[^&#\s]*)", re.IGNORECASE)
# libpq key=value: password=secret, password = 'quoted \' value'
_KEYVALUE = re.compile(
    r"(?P<pre>\b(?:pg)?(?:ssl)?password\s*=\s*)(?P<pw>'(?:[^'\\]|\\.)*'|[^\s']\S*)", re.IGNORECASE)
# AWS-style secrets that may appear in error text from boto3 or in environment dumps
_SECRET_KV = re.compile(
    r"(?P<pre>\b(?:aws_secret_access_key|secret_access_key|secret[_-]?key|token)\s*[=:]\s*)"
    r"(?P<pw>\S+)", re.IGNORECASE)
# an age secret key
_AGE_KEY = re.compile(r"AGE-SECRET-KEY-1[0-9A-Z]+")


def redact(text: str) -> str:
    """``text`` with every credential it carries replaced by ``***``."""
    if not text:
        return text
    out = _WORD_WITH_AT.sub(_url_userinfo, text) if "@" in text else text
    out = _QUERY.sub(lambda m: f"{m.group('pre')}{MASK}", out)
    out = _KEYVALUE.sub(lambda m: f"{m.group('pre')}{MASK}", out)
    out = _SECRET_KV.sub(lambda m: f"{m.group('pre')}{MASK}", out)
    return _AGE_KEY.sub("AGE-SECRET-KEY-" + MASK, out)


def _url_userinfo(word: re.Match[str]) -> str:
    """A word holding an '@' with the password of each URL in it masked: searched up to
    its last '@' only (a URL's password ends at one)."""
    text = word.group(0)
    end = text.rindex("@") + 1
    return _URL_USERINFO.sub(lambda m: f"{m.group('pre')}{MASK}@", text[:end]) + text[end:]


def redact_opt(text: str | None) -> str | None:
    return None if text is None else redact(text)
