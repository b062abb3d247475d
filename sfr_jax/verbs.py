"""The one table of `sfr-jax` verbs, and running one by name.

Each verb's entry point is `sfr_jax.cli.verb`-wrapped (exit codes: 0 done, 2 user error, 1 failure,
130/143 interrupted). Verbs are imported by name on use (importlib), so that `sfr-jax --help` and light
verbs do not pay for loading JAX, TensorFlow or torch, and so that no module imports a verb module: the
command line (sfr_jax.main) and the demo both run verbs through `run`.
"""
from __future__ import annotations

import importlib
from typing import Sequence

# verb -> (module, function, one-line help)
VERBS = {
    "convert-clip": ("sfr_jax.convert.cli", "convert_clip_main", "Hugging Face / OpenAI CLIP weights -> our format"),
    "prepare": ("sfr_jax.review.prepare", "main",
                "Sewer-ML / WZ-Pipe / synthetic images, or reviewed inspection videos -> TFRecord shards"),
    "synth": ("sfr_jax.data.synthetic_cli", "main", "write a synthetic mini Sewer-ML in the real raw format"),
    "train": ("sfr_jax.train.cli", "train_main", "train SFR-Net data-parallel on every device of every host"),
    "eval": ("sfr_jax.evaluate", "eval_main", "evaluate a saved step: ML-ZSL and ML-GZSL tables"),
    "calibrate": ("sfr_jax.evaluate", "calibrate_main", "fit decision thresholds and probabilities on a labelled split"),
    "export": ("sfr_jax.exchange", "export_main", "checkpoint -> PyTorch (reference or Hugging Face layout)"),
    "import": ("sfr_jax.exchange", "import_main", "reference SFR-Net .pth -> a workdir"),
    "predict": ("sfr_jax.predict", "main", "score images, including user-described defect classes"),
    "inspect": ("sfr_jax.inspection.cli", "main", "inspection videos -> defect events per video and an HTML report"),
    "review": ("sfr_jax.review.cli", "main", "serve inspect reports for a person to accept, reject, relabel, move, add"),
    "labelstudio": ("sfr_jax.review.labelstudio", "main", "inspect events <-> Label Studio video tasks and its export"),
    "demo": ("sfr_jax.demo.run", "main", "the whole story on an embedded miniature, on a CPU"),
}

VERB_MODULES = tuple(sorted({module for module, _, _ in VERBS.values()}))


def entry(verb: str):
    """The wrapped entry point `fn(argv) -> exit code` of a verb of VERBS."""
    module_name, function_name, _ = VERBS[verb]
    return getattr(importlib.import_module(module_name), function_name)


def run(verb: str, argv: Sequence[str] = ()) -> int:
    """Run `sfr-jax VERB ARGV...` in this process and return its exit code."""
    return int(entry(verb)(list(argv)) or 0)
