"""The `sfr-jax` command: dispatch `sfr-jax VERB ...` through the one verb table (sfr_jax.verbs)."""
import os
import sys

from sfr_jax import cli, interrupts, topology, verbs
from sfr_jax.errors import Interrupted
from sfr_jax.verbs import VERBS


def _usage() -> str:
    lines = ["usage: sfr-jax VERB [args...]", "", "verbs:"]
    lines += [f"  {verb:<13} {help_}" for verb, (_, _, help_) in VERBS.items()]
    lines += ["", "`sfr-jax VERB --help` explains a verb; `--debug` shows the traceback of user errors too."]
    return "\n".join(lines)


def main(argv=None) -> int:
    """Dispatch `sfr-jax VERB ...` to the verb's entry point and return its exit code. As the process entry
    (argv None) it ends the process itself after a Ctrl-C or SIGTERM: see _end_interrupted."""
    if argv is None:
        return _end_interrupted(main(sys.argv[1:]))
    argv = list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    verb, rest = argv[0], argv[1:]
    if verb not in VERBS:
        print(f"sfr-jax: unknown verb {verb!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    topology.leave_out_absent_tpu()  # before any verb loads JAX
    with interrupts.noted():  # also while the verb's module (JAX, TensorFlow, torch) is imported
        try:
            return verbs.run(verb, rest)
        except (KeyboardInterrupt, Interrupted) as stop:
            print(f"sfr-jax {verb}: {interrupts.HINT}", file=sys.stderr, flush=True)
            return cli.EXIT_SIGNAL[getattr(stop, "signal", "SIGINT")]


def _end_interrupted(code: int) -> int:
    """After a Ctrl-C or SIGTERM end with os._exit: threads that TensorFlow, XLA or torch left mid-work could
    crash the interpreter's teardown (an 'interrupted' calibrate once then died with SIGSEGV, exit 139).
    Outputs are committed or removed by then (sfr_jax.fileio)."""
    if code in cli.EXIT_SIGNAL.values():
        # what atexit would have done for multiprocessing (prepare's worker pool): its children ended and its
        # semaphores unlinked, else its resource tracker reports them leaked after we are gone
        from multiprocessing import util as multiprocessing_util

        multiprocessing_util._exit_function()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
