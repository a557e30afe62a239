"""The checks of the geometric texts whose values a regular expression cannot judge
(textvalues.py runs them on texts already in their type's form, textforms.py).

- box: box_out writes the upper right corner first: box_in swaps the coordinates of the
  two corners it is given so that the first is at least the second in float8's order (NaN
  above every number, -0 equal to 0). ``(0,0),(1,1)`` is the box PostgreSQL writes
  ``(1,1),(0,0)``: a text no source wrote, refused as any other spelling PostgreSQL reads
  but never writes (docs/targets.md).
- circle: a radius that is not negative (circle_in refuses ``<(1,2),-3>``; NaN and -0 it
  takes).
- line: ``{A,B,C}`` with A and B not both zero within geo_decls.h's EPSILON (1e-06), as
  line_in refuses them.
"""

from __future__ import annotations

import math

#: geo_decls.h's EPSILON, within which line_in takes a coefficient for zero (FPzero)
_EPSILON = 1.0e-06


def _lt(a: float, b: float) -> bool:
    """float8_lt: NaN is above every number and equal to itself."""
    return not math.isnan(a) and (math.isnan(b) or a < b)


def _numbers(text: str) -> list[float]:
    return [float(v) for v in text.translate(str.maketrans("", "", "()[]{}<>")).split(",")]


def box_ok(text: str) -> bool:
    """``(x1,y1),(x2,y2)`` with x1 >= x2 and y1 >= y2 in float8's order."""
    x1, y1, x2, y2 = _numbers(text)
    return not _lt(x1, x2) and not _lt(y1, y2)


def circle_ok(text: str) -> bool:
    """``<(x,y),r>`` with r not below zero."""
    return not _numbers(text)[2] < 0


def line_ok(text: str) -> bool:
    """``{A,B,C}`` with A or B not zero (beyond the epsilon, or NaN)."""
    a, b, _ = _numbers(text)
    return not (abs(a) <= _EPSILON and abs(b) <= _EPSILON)
