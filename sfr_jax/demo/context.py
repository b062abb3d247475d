"""What every demo stage reads: the run's options (out, seed, sizes, ...) and the infos of earlier stages."""
from __future__ import annotations

import dataclasses
import os


def _config_file() -> str:
    """configs/demo.py of this checkout (two folders above this package), else of the working directory."""
    here = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "configs", "demo.py"))
    return here if os.path.isfile(here) else os.path.join("configs", "demo.py")


CONFIG_FILE = _config_file()
DEFAULT_OUT, DEFAULT_SEED, DEFAULT_IMAGE_SIZE = "checkpoints/demo", 0, 64  # what configs/demo.py names
SIZES = {  # frames per set, cctv test fraction, pre-training steps, SFR-Net steps (-1: the config's epochs)
    "full": dict(web=4000, cctv=3000, test_fraction=0.3, pretrain_steps=1000, train_steps=-1, draw=96),
    "quick": dict(web=400, cctv=320, test_fraction=0.4, pretrain_steps=20, train_steps=6, draw=64),
}


@dataclasses.dataclass
class Context:
    """One demo run: its options, and info[stage name] = what each finished stage returned."""

    out: str
    seed: int = DEFAULT_SEED
    image_size: int = DEFAULT_IMAGE_SIZE
    quick: bool = False
    ablation: bool = True
    pretrain_here: bool = False  # pre-train the tiny CLIP even when its recipe's result ships (shipped_clip)
    size: dict = dataclasses.field(default_factory=lambda: dict(SIZES["full"]))
    info: dict = dataclasses.field(default_factory=dict)

    def path(self, *parts: str) -> str:
        """A path under the demo's --out folder."""
        return os.path.join(self.out, *parts)
