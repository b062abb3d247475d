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
import functools
import os
import sys
import traceback
from typing import Callable, Optional, Sequence

from sfr_jax import interrupts, options
from sfr_jax.errors import Interrupted, UserError
from sfr_jax.source import ModelSource

EXIT_USER_ERROR, EXIT_FAILURE = 2, 1
EXIT_SIGNAL = {"SIGINT": 130, "SIGTERM": 143}
RESUME_HINT = interrupts.HINT


def debug_enabled(argv: Sequence[str] = ()) -> bool:
    return "--debug" in argv or os.environ.get("SFR_JAX_DEBUG", "") not in ("", "0")


def one_line(message: str) -> str:
    """A message folded onto one line (lists of problems are joined with '; ')."""
    return "; ".join(part.strip() for part in str(message).splitlines() if part.strip())


def run(prog: str, verb: Callable[[list], Optional[int]], argv: Sequence[str]) -> int:
    """Run `verb(argv)` under the convention above and return its exit code. A Ctrl-C or SIGTERM during the
    verb ends it with 130 / 143 and the one line, whatever a library made of the exception it raised."""
    argv = list(argv)
    debug = debug_enabled(argv)
    argv = [a for a in argv if a != "--debug"]
    with interrupts.noted():
        try:
            code = int(verb(argv) or 0)
            interrupts.check()  # a library swallowed the interrupt and the verb went on
            return code
        except UserError as error:
            if interrupts.received():
                return _interrupted(prog, interrupts.received())
            if debug:
                traceback.print_exc()
            print(f"{prog}: {one_line(error)}", file=sys.stderr, flush=True)
            return EXIT_USER_ERROR
        except KeyboardInterrupt:
            return _interrupted(prog, "SIGINT")
        except Interrupted as stop:
            return _interrupted(prog, stop.signal, one_line(stop))
        except SystemExit as stop:  # argparse's own usage errors (exit 2, one line) and --help (exit 0)
            return stop.code if isinstance(stop.code, int) else EXIT_USER_ERROR
        except Exception as error:
            if interrupts.received():  # what a library made of the interrupt (e.g. torch.onnx's export error)
                return _interrupted(prog, interrupts.received())
            traceback.print_exc()
            print(f"{prog}: internal error ({type(error).__name__}: {one_line(error)}); this is a bug of sfr-jax, "
                  "please report it with the traceback above", file=sys.stderr, flush=True)
            return EXIT_FAILURE


def _interrupted(prog: str, signal_name: str, message: str = "") -> int:
    print(f"{prog}: {message or RESUME_HINT}", file=sys.stderr, flush=True)
    return EXIT_SIGNAL.get(signal_name, EXIT_SIGNAL["SIGINT"])


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


def add_model_source(ap: argparse.ArgumentParser, *, checkpoint: bool = True, required: bool = True) -> None:
    """--workdir W [--step N | --best] (and --checkpoint FILE): where a trained model comes from."""
    src = ap.add_mutually_exclusive_group(required=required)
    src.add_argument("--workdir", help="training (or imported) workdir")
    if checkpoint:
        src.add_argument("--checkpoint", help="a checkpoint file or folder: reference .pth, our export (.pth/"
                                              ".safetensors + .json sidecar), an hf-layout export folder")
    which = ap.add_mutually_exclusive_group()
    which.add_argument("--step", type=options.nonnegative_int, default=None,
                       help="saved step (default: the newest readable one)")
    which.add_argument("--best", action="store_true", help="the best step by the run's train.best_metric")


def add_checkpoint_options(ap: argparse.ArgumentParser) -> None:
    """Options that say how to read a checkpoint without a sidecar (the reference's own .pth files)."""
    ap.add_argument("--bare-reference", action="store_true",
                    help="read a .pth without sidecar as a reference SFR-Net checkpoint (Sewer-ML classes, our "
                         "descriptions unless --descriptions, OpenAI's vocabulary unless --tokenizer)")
    ap.add_argument("--tokenizer", default=None, help="with --bare-reference: tokenizer folder or bpe .txt.gz")
    ap.add_argument("--descriptions", default=None, help="with --bare-reference: one description per line")


def model_source(args: argparse.Namespace, *, classes: Optional[str] = None, mode: Optional[str] = None) -> ModelSource:
    """The ModelSource named by add_model_source's (and add_checkpoint_options') flags."""
    return ModelSource(workdir=args.workdir, step=args.step, best=args.best,
                       checkpoint=getattr(args, "checkpoint", None),
                       bare_reference=getattr(args, "bare_reference", False),
                       tokenizer=getattr(args, "tokenizer", None), descriptions=getattr(args, "descriptions", None),
                       classes=classes, mode=mode)


def add_overwrite(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--overwrite", action="store_true", help="replace existing outputs")


def add_distributed(ap: argparse.ArgumentParser) -> None:
    """--coordinator / --num-processes / --process-id of a multi-process run (train, eval, calibrate)."""
    ap.add_argument("--coordinator", default="", help="multi-process: HOST:PORT of process 0")
    ap.add_argument("--num-processes", type=options.nonnegative_int, default=0,
                    help="multi-process: number of processes")
    ap.add_argument("--process-id", type=int, default=-1, help="multi-process: this process's index")
