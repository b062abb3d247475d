"""Numeric options of inspect: every value that is not a finite number in range is refused by argparse in one
line naming the option and the value (before: `--fps inf` and `--every 1e-320` ended in tracebacks); the
edges of each range are accepted. The expectations are written out by hand, not derived from the code."""
import argparse
import math

import pytest

from sfr_jax import cli, options
from sfr_jax.inspection import cli as inspect_cli

BASE = ["--checkpoint", "x.pth", "v.mp4", "--out", "o"]


@pytest.mark.parametrize("flag, value", [
    ("--fps", "inf"), ("--fps", "-inf"), ("--fps", "nan"), ("--fps", "0"), ("--fps", "-2"), ("--fps", "1e309"),
    ("--fps", "5000"), ("--every", "1e-320"), ("--every", "0"), ("--every", "nan"), ("--every", "1e400"),
    ("--every", "half"), ("--margin", "1"), ("--margin", "-0.1"), ("--margin", "nan"), ("--merge-gap", "inf"),
    ("--merge-gap", "-1"), ("--point-below", "nan"), ("--dark-below", "inf"), ("--uniform-below", "nan"),
    ("--blur-above", "-inf"), ("--batch", "0"), ("--batch", "2.5"), ("--batch", "-3"),
])
def test_bad_numbers_are_one_line_naming_the_option(flag, value, capsys):
    # FLAG=VALUE: argparse would take a lone "-inf" for an option
    assert cli.run("sfr-jax inspect", inspect_cli.main, BASE + [f"{flag}={value}"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert f"argument {flag}" in last and repr(value) in last, last


@pytest.mark.parametrize("flag, value, parsed", [
    ("--every", "0.001", 0.001), ("--every", "10000", 10000.0), ("--fps", "1000", 1000.0),
    ("--fps", "0.0001", 0.0001), ("--margin", "0", 0.0), ("--margin", "0.99", 0.99), ("--merge-gap", "0", 0.0),
    ("--dark-below", "-1", -1.0), ("--blur-above", "2", 2.0), ("--batch", "1", 1),
])
def test_edges_of_each_range_are_accepted(flag, value, parsed):
    args = inspect_cli.build_parser().parse_args(BASE + [flag, value])
    assert getattr(args, flag[2:].replace("-", "_")) == parsed


def test_types_refuse_what_python_float_accepts():
    for text in ("inf", "-Infinity", "nan", "1e999"):
        assert math.isnan(float(text)) or math.isinf(float(text))  # what argparse's type=float let through
        with pytest.raises(argparse.ArgumentTypeError, match="not a finite number"):
            options.finite_float(text)
    assert options.fraction("0.5") == 0.5 and options.nonnegative_int("0") == 0
    with pytest.raises(argparse.ArgumentTypeError, match="between 1 and 2"):
        options.float_between(1, 2)("2.0001")
