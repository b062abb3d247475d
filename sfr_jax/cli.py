"""The one command-line convention of every verb: argparse flags spelt alike, and one place that turns what
a verb raises into an exit code.

    exit 0    done
    exit 2    a user error (`sfr_jax.errors.UserError`): one line on stderr naming the file, key or value
    exit 1    a failure of ours: the traceback, then one line
    exit 130  Ctrl-C, exit 143 SIGTERM: one line ("interrupted; run the same command to resume")

`--debug` (any verb) or SFR_JAX_DEBUG=1 prints the traceback of user errors too.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import math
import os
import signal
import sys
import threading
import traceback
from typing import Callable, Optional, Sequence

from sfr_jax.errors import Interrupted, UserError

EXIT_USER_ERROR, EXIT_FAILURE = 2, 1
EXIT_SIGNAL = {"SIGINT": 130, "SIGTERM": 143}
RESUME_HINT = "interrupted; run the same command to resume"


def debug_enabled(argv: Sequence[str] = ()) -> bool:
    return "--debug" in argv or os.environ.get("SFR_JAX_DEBUG", "") not in ("", "0")


def one_line(message: str) -> str:
    """A message folded onto one line (lists of problems are joined with '; ')."""
    return "; ".join(part.strip() for part in str(message).splitlines() if part.strip())


def _raise_terminated(signum, frame):
    raise Interrupted(RESUME_HINT, "SIGTERM")


@contextlib.contextmanager
def sigterm_raises():
    """Within the block SIGTERM raises Interrupted in the main thread (as Ctrl-C raises KeyboardInterrupt),
    unless a handler of its own is installed; a verb with a graceful stop (train) installs one."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(prog: str, verb: Callable[[list], Optional[int]], argv: Sequence[str]) -> int:
    """Run `verb(argv)` under the convention above and return its exit code."""
    argv = list(argv)
    debug = debug_enabled(argv)
    argv = [a for a in argv if a != "--debug"]
    try:
        with sigterm_raises():
            return int(verb(argv) or 0)
    except UserError as error:
        if debug:
            traceback.print_exc()
        print(f"{prog}: {one_line(error)}", file=sys.stderr, flush=True)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"{prog}: {RESUME_HINT}", file=sys.stderr, flush=True)
        return EXIT_SIGNAL["SIGINT"]
    except Interrupted as stop:
        print(f"{prog}: {one_line(stop) or RESUME_HINT}", file=sys.stderr, flush=True)
        return EXIT_SIGNAL.get(stop.signal, EXIT_SIGNAL["SIGINT"])
    except SystemExit as stop:  # argparse's own usage errors (exit 2, usage printed) and --help (exit 0)
        return stop.code if isinstance(stop.code, int) else EXIT_USER_ERROR
    except Exception as error:
        traceback.print_exc()
        print(f"{prog}: internal error ({type(error).__name__}: {one_line(error)}); this is a bug of sfr-jax, "
              "please report it with the traceback above", file=sys.stderr, flush=True)
        return EXIT_FAILURE


def verb(prog: str):
    """Decorator of a verb's entry point `fn(argv)`: calling it runs it under `run` and returns the exit code,
    so `sfr-jax`, the demo and tests all get the same codes and messages."""

    def wrap(fn):
        @functools.wraps(fn)
        def entry(argv=()) -> int:
            return run(prog, fn, argv)

        entry.prog = prog
        return entry

    return wrap


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is ONE line naming the option, with a pointer to --help (argparse's own
    usage block of 8-15 lines buried the one line that mattered)."""

    def error(self, message):
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {one_line(message)} (see `{self.prog} --help`)\n")


def parser(prog: str, description: str, **kwargs) -> argparse.ArgumentParser:
    """An ArgumentParser for `sfr-jax VERB` with the shared `--debug` flag documented."""
    ap = OneLineParser(prog=prog, description=description, **kwargs)
    ap.add_argument("--debug", action="store_true", help="show the traceback of user errors too")
    return ap


def _number(cast, text: str, what: str, ok: Callable[[float], bool]):
    """`text` as a finite int or float that passes `ok`, else argparse's error naming the value and the rule;
    argparse adds the option's name."""
    try:
        value = cast(text)
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


def fraction(text: str) -> float:
    """A share of something in [0, 1)."""
    return _number(float, text, "a fraction in [0, 1)", lambda v: 0 <= v < 1)


def probability(text: str) -> float:
    return _number(float, text, "a probability in [0, 1]", lambda v: 0 <= v <= 1)


def add_model_source(ap: argparse.ArgumentParser, *, checkpoint: bool = True, required: bool = True) -> None:
    """--workdir W [--step N | --best] (and --checkpoint FILE): where a trained model comes from."""
    src = ap.add_mutually_exclusive_group(required=required)
    src.add_argument("--workdir", help="training (or imported) workdir")
    if checkpoint:
        src.add_argument("--checkpoint", help="a checkpoint file or folder: reference .pth, our export (.pth/"
                                              ".safetensors + .json sidecar), an hf-layout export folder")
    which = ap.add_mutually_exclusive_group()
    which.add_argument("--step", type=nonnegative_int, default=None, help="saved step (default: the newest readable one)")
    which.add_argument("--best", action="store_true", help="the best step by the run's train.best_metric")


def add_overwrite(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--overwrite", action="store_true", help="replace existing outputs")


def add_distributed(ap: argparse.ArgumentParser) -> None:
    """--coordinator / --num-processes / --process-id of a multi-process run (train, eval, calibrate)."""
    ap.add_argument("--coordinator", default="", help="multi-process: HOST:PORT of process 0")
    ap.add_argument("--num-processes", type=nonnegative_int, default=0, help="multi-process: number of processes")
    ap.add_argument("--process-id", type=int, default=-1, help="multi-process: this process's index")
