"""redact(): every form a credential takes in topoff's messages becomes ***."""

from __future__ import annotations

import pytest

from support.cli import run_cli
from topoff.redact import redact

PW = "Pw-s3cret-9876"


@pytest.mark.parametrize("text", [
    f"postgresql://user:{PW}@host:5432/db",
    f"postgresql://:{PW}@host/db",
    f"https://reader:{PW}@dumps.example.org/x",
    f"config file postgresql:/user:{PW}@127.0.0.1:1/nowhere not found",  # a path of a URL
    f"host=h password={PW} dbname=x",
    f"host=h password='{PW} with space' dbname=x",
    f"postgresql://h/db?sslmode=require&password={PW}",
    f"PGPASSWORD={PW} psql",
    f"aws_secret_access_key={PW}",
])
def test_a_credential_is_masked(text):
    assert PW not in redact(text)
    assert "***" in redact(text)


def test_text_without_credentials_is_kept():
    text = "loaded public.messages file 1/1 (1,500 rows) from http://host:8080/a/b"
    assert redact(text) == text


def test_click_usage_errors_are_masked():
    """click echoes the values it could not use; those pass through redact too."""
    url = f"postgresql://postgres:{PW}@127.0.0.1:1/nowhere"
    result = run_cli("status", "replica.duckdb", url)
    assert result.exit_code == 2 and "unexpected extra argument" in result.stderr
    assert PW not in result.stderr + result.stdout
    result = run_cli("sync", "--config", url, "a", "b")
    assert result.exit_code == 2 and PW not in result.stderr + result.stdout


@pytest.mark.parametrize("text", [
    f"value 'x{'a' * 30}postgresql://u:{PW}@h/db' is too long",
    f"dsn=(postgresql://u:{PW}@h/db) and mailto:a@b and more@ words",
    f"{'a:/' * 20} https://u:{PW}@h/",
    f"{'z' * 200}mysql://u:{PW}@h/db",
])
def test_a_credential_among_other_text_is_masked(text):
    assert PW not in redact(text) and "***" in redact(text)


def test_a_message_of_megabytes_is_redacted_in_time_linear_in_its_length():
    """An error may carry a value of megabytes (a hostile dataset's text in a message of
    the target's): redact() never backtracks over it again and again (a run of 40,000
    letters took 2.6 s, one of 18 MB days; the 500,000 here about 7 minutes). Run in a
    child so that a relapse fails the test instead of hanging the suite."""
    import subprocess
    import sys

    code = ("from topoff.redact import redact\n"
            "for t in ('a' * 500_000, 'a:/' * 170_000, '@' + 'a:/' * 170_000,\n"
            "          'x@' + 'a' * 500_000, ('a' * 1000 + ' ') * 500, ':' * 500_000,\n"
            "          'a://' + 'b' * 500_000 + ':c', 'password=' * 50_000):\n"
            "    assert redact(t + ' postgresql://u:pw@h/') .endswith('postgresql://u:***@h/')\n")
    done = subprocess.run([sys.executable, "-c", code], timeout=120, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
