"""argparse `type=` callables for numeric options: finite, in range, or one line naming the value.

argparse prints "argument --fps: <message>", so each message names the value and the allowed range; the
option's name comes from argparse. NaN and infinities are refused everywhere (float('inf') parses, and
then ends in a traceback far away). Used by inspect and predict; the shared CLI helpers may absorb it.
"""
from __future__ import annotations

import argparse
import math


def _float(text: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _int(text: str) -> int:
    try:
        return int(str(text).strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def finite_float(text: str) -> float:
    """Any finite number."""
    return _float(text)


def nonnegative_float(text: str) -> float:
    """A finite number >= 0."""
    value = _float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return value


def fraction(text: str) -> float:
    """A finite number in [0, 1)."""
    value = _float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0 and < 1")
    return value


def float_between(low: float, high: float, unit: str = ""):
    """A type for a finite number in [low, high] (the message says the range, in `unit`)."""
    def parse(text: str) -> float:
        value = _float(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r} must be between {low:g} and {high:g}{unit}")
        return value
    parse.__name__ = f"float_between_{low:g}_{high:g}"
    return parse


def positive_int(text: str) -> int:
    """A whole number >= 1."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 1")
    return value


def nonnegative_int(text: str) -> int:
    """A whole number >= 0."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return value

