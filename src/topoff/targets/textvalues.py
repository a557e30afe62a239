"""The checks of a text PostgreSQL's output form (textforms.py) lets through that no regular
expression sees: whether the value it spells is one PostgreSQL's input function takes and
writes back so.

Each check takes a text already in its type's form and says whether it is such a value: a
cidr without bits right of its mask. They run in Python, once a value, for these rare
types only; a check never raises, a text it cannot read is refused.
"""

from __future__ import annotations

import socket
from collections.abc import Callable


def cidr_ok(text: str) -> bool:
    """No bit of the address right of its mask (cidr_in refuses it)."""
    address, _, mask = text.partition("/")
    if ":" in address:
        bits, value = 128, int.from_bytes(socket.inet_pton(socket.AF_INET6, address))
    else:
        bits, value = 32, int.from_bytes(socket.inet_aton(address))
    return value & ((1 << (bits - int(mask))) - 1) == 0


#: name (Rule.exact) -> its check, of a text already in its type's form
CHECKS: dict[str, Callable[[str], bool]] = {
    "cidr": cidr_ok,
}


def exact(name: str, text: str) -> bool:
    """Whether ``text`` (in the form of its type) passes the check ``name``; never raises."""
    try:
        return CHECKS[name](text)
    except (ValueError, ArithmeticError, LookupError, TypeError):
        return False

