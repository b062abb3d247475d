"""argparse `type=` callables for numeric options, the one set every verb uses: a finite number in range,
else argparse's one line naming the option (argparse adds it) and the value with the rule it breaks.
NaN and infinities are refused everywhere (float('inf') parses, and then ends in a traceback far away)."""
from __future__ import annotations

import argparse
import math
from typing import Callable


def _number(cast, text: str, what: str, ok: Callable[[float], bool]):
    """`text` as a finite int or float that passes `ok`, else an ArgumentTypeError naming value and rule."""
    try:
        value = cast(str(text).strip())
    except (TypeError, ValueError, OverflowError):
        value = None
    if value is None or (cast is float and not math.isfinite(value)) or not ok(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
    return value


def positive_int(text: str) -> int:
    return _number(int, text, "a positive integer", lambda v: v > 0)


def nonnegative_int(text: str) -> int:
    return _number(int, text, "an integer >= 0", lambda v: v >= 0)


def finite_float(text: str) -> float:
    return _number(float, text, "a finite number", lambda v: True)


def positive_float(text: str) -> float:
    return _number(float, text, "a finite number > 0", lambda v: v > 0)


def nonnegative_float(text: str) -> float:
    return _number(float, text, "a finite number >= 0", lambda v: v >= 0)


def fraction(text: str) -> float:
    """A share of something in [0, 1)."""
    return _number(float, text, "a fraction in [0, 1)", lambda v: 0 <= v < 1)


def probability(text: str) -> float:
    return _number(float, text, "a probability in [0, 1]", lambda v: 0 <= v <= 1)


def float_between(low: float, high: float, unit: str = ""):
    """A type for a finite number in [low, high] (the message says the range, in `unit`)."""
    def parse(text: str) -> float:
        value = finite_float(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r} must be between {low:g} and {high:g}{unit}")
        return value
    parse.__name__ = f"float_between_{low:g}_{high:g}"
    return parse
