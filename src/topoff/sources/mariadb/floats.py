"""A float's canonical text (topoff.canonical) from its exact value, for ``verify``.

The ``exact`` profile is PostgreSQL's own output: the shortest text that reads back as the
same value (a ``real`` as a 32-bit float), in fixed notation when its decimal exponent is
at least -4 and below 15 (``real``: 6), else as ``d.ddde+XX``. The ``duckdb`` profile is
C's ``%.16e`` of the value widened to a double. MariaDB has no NaN or infinities.
"""

from __future__ import annotations

import math
import struct
from decimal import Decimal


def _float32(v: float) -> float:
    return float(struct.unpack("f", struct.pack("f", v))[0])


def _neighbours(a: float, bits: int) -> tuple[Decimal, Decimal]:
    """The ``bits``-bit floats next to a positive finite ``a``, exactly (past the largest
    float, one as far above as the one below is below)."""
    if bits == 64:
        down, up = math.nextafter(a, 0.0), math.nextafter(a, math.inf)
    else:
        m = struct.unpack("<I", struct.pack("<f", a))[0]
        down, up = (float(struct.unpack("<f", struct.pack("<I", k))[0]) for k in (m - 1, m + 1))
    exact_down = Decimal(down)
    if math.isinf(up) or (bits == 32 and math.isinf(_float32(up))):
        return exact_down, Decimal(a) * 2 - exact_down
    return exact_down, Decimal(up)


def _inside(text: str, a: float, bits: int) -> bool:
    """``text`` reads back as ``a`` without a tie: PostgreSQL's shortest form (Ryu) takes no
    text that lies exactly halfway to a neighbouring value."""
    down, up = _neighbours(a, bits)
    exact = Decimal(a)
    return (exact + down) / 2 < Decimal(text) < (exact + up) / 2


def shortest(v: float, bits: int) -> str:
    """The shortest decimal text strictly nearer to ``v`` than to any other ``bits``-bit
    float (the nearest such text when there are several)."""
    if v < 0:
        return "-" + shortest(-v, bits)
    if bits == 64:
        text = repr(v)
        return text if _inside(text, v, 64) else f"{v:.17g}"
    f = _float32(v)
    for p in range(1, 10):
        text = f"{f:.{p}g}"
        if _inside(text, f, 32):
            return text
    return f"{f:.9g}"


def pg_text(v: float, bits: int) -> str:
    """What PostgreSQL prints for ``v`` in a ``real`` (32) or ``double precision`` (64)."""
    if v == 0:
        return "-0" if math.copysign(1.0, v) < 0 else "0"
    sign, digits_t, exponent = Decimal(shortest(v, bits)).as_tuple()
    digits = "".join(map(str, digits_t)).rstrip("0")
    assert isinstance(exponent, int)
    exp10 = len("".join(map(str, digits_t))) - 1 + exponent
    minus = "-" if sign else ""
    if -4 <= exp10 < (15 if bits == 64 else 6):
        if exp10 >= 0:
            whole = digits[:exp10 + 1].ljust(exp10 + 1, "0")
            frac = digits[exp10 + 1:]
        else:
            whole, frac = "0", "0" * (-exp10 - 1) + digits
        return minus + whole + ("." + frac if frac else "")
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{minus}{mantissa}e{'+' if exp10 >= 0 else '-'}{abs(exp10):02d}"


def float_text(v: float, bits: int, profile: str) -> str:
    """The canonical text of a float value of a ``bits``-bit column."""
    if bits == 32:
        v = _float32(v)
    if profile == "duckdb":
        return f"{v:.16e}"
    return pg_text(v, bits)
