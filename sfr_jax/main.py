"""The `sfr-jax` command: dispatch `sfr-jax VERB ...` through the one verb table (sfr_jax.verbs)."""
import sys

from sfr_jax import topology, verbs
from sfr_jax.verbs import VERBS


def _usage() -> str:
    lines = ["usage: sfr-jax VERB [args...]", "", "verbs:"]
    lines += [f"  {verb:<13} {help_}" for verb, (_, _, help_) in VERBS.items()]
    lines += ["", "`sfr-jax VERB --help` explains a verb; `--debug` shows the traceback of user errors too."]
    return "\n".join(lines)


def main(argv=None) -> int:
    """Dispatch `sfr-jax VERB ...` to the verb's entry point and return its exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    verb, rest = argv[0], argv[1:]
    if verb not in VERBS:
        print(f"sfr-jax: unknown verb {verb!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    topology.leave_out_absent_tpu()  # before any verb loads JAX
    return verbs.run(verb, rest)


if __name__ == "__main__":
    sys.exit(main())
