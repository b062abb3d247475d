"""The `sfr-jax` command: one verb per job, each implemented next to the code it drives.

Each verb's entry point is `sfr_jax.cli.verb`-wrapped (exit codes: 0 done, 2 user error, 1 failure,
130/143 interrupted). Verbs are imported by name on use, so that `sfr-jax --help` and light verbs do not
pay for loading JAX, TensorFlow or torch.
"""
import importlib
import sys

from sfr_jax import topology

# verb -> (module, function, one-line help)
VERBS = {
    "convert-clip": ("sfr_jax.convert.cli", "convert_clip_main", "Hugging Face / OpenAI CLIP weights -> our format"),
    "prepare": ("sfr_jax.data.prepare", "main", "Sewer-ML / WZ-Pipe / synthetic images -> TFRecord shards"),
    "synth": ("sfr_jax.data.synthetic", "main", "write a synthetic mini Sewer-ML in the real raw format"),
    "train": ("sfr_jax.train.cli", "train_main", "train SFR-Net data-parallel on every device of every host"),
    "eval": ("sfr_jax.evaluate", "eval_main", "evaluate a saved step: ML-ZSL and ML-GZSL tables"),
    "calibrate": ("sfr_jax.evaluate", "calibrate_main", "fit decision thresholds and probabilities on a labelled split"),
    "export": ("sfr_jax.convert.cli", "export_main", "checkpoint -> PyTorch (reference or Hugging Face layout)"),
    "import": ("sfr_jax.convert.cli", "import_main", "reference SFR-Net .pth -> a workdir"),
    "predict": ("sfr_jax.predict", "main", "score images, including user-described defect classes"),
    "inspect": ("sfr_jax.inspection.cli", "main", "inspection videos -> defect events per video and an HTML report"),
    "demo": ("sfr_jax.demo.run", "main", "the whole story on an embedded miniature, on a CPU"),
}


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
    module_name, function_name, _ = VERBS[verb]
    topology.leave_out_absent_tpu()  # before any verb loads JAX
    return int(getattr(importlib.import_module(module_name), function_name)(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
