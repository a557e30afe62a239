"""The check of a box's text, whose value a regular expression cannot judge (textvalues.py
runs it on texts already in the type's form, textforms.py).

box_out writes the upper right corner first: box_in swaps the coordinates of the two
corners it is given so that the first is at least the second in float8's order (NaN above
every number, -0 equal to 0). ``(0,0),(1,1)`` is the box PostgreSQL writes
``(1,1),(0,0)``: a text no source wrote, refused as any other spelling PostgreSQL reads but
never writes (docs/targets.md).
"""

from __future__ import annotations

import math


def _lt(a: float, b: float) -> bool:
    """float8_lt: NaN is above every number and equal to itself."""
    return not math.isnan(a) and (math.isnan(b) or a < b)


def _numbers(text: str) -> list[float]:
    return [float(v) for v in text.translate(str.maketrans("", "", "()[]{}<>")).split(",")]


def box_ok(text: str) -> bool:
    """``(x1,y1),(x2,y2)`` with x1 >= x2 and y1 >= y2 in float8's order."""
    x1, y1, x2, y2 = _numbers(text)
    return not _lt(x1, x2) and not _lt(y1, y2)
