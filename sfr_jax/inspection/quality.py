"""The frame-quality gate: dark, blank/uniform and strongly blurred frames are flagged, so that they are
scored but kept out of events.

Each frame is measured on its luma (ITU-R 601, PIL's "L"), resized to `analysis_height` px high (aspect
kept) and cropped to its central `region` in width and height: distance counters and titles sit along the
edges, and a blank screen with a counter burnt in is still blank. Three measures, three independent flags:
    luma_mean    mean luma, 0..255            dark     when luma_mean < dark_below
    luma_std     standard deviation of luma   uniform  when luma_std < uniform_below (a blank, a title card,
                                                       a lens against the wall)
    blur_effect  0 (sharp) .. 1 (blurred)     blurred  when blur_effect > blur_above
blur_effect is the no-reference blur metric of Crete et al., "The blur effect: perception and estimation
with a new no-reference perceptual blur metric" (SPIE 2007), as scikit-image's `measure.blur_effect` computes
it (Sobel gradients, the paper's 9-tap mean blur): how much of the frame's variation survives the blur, in
the worse of the two directions. It does not fall with brightness, so a dim frame is not a blurred one.
Sobel gradients read about 0.1 higher than the paper's pixel differences, so the threshold is 0.7 where it
was 0.6 with those: the same frames are flagged (tests/test_inspect_video.py). Each flag can be switched off.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image

FLAGS = ("dark", "uniform", "blurred")
BLUR_TAPS = 9  # the mean filter of Crete et al.


@dataclasses.dataclass(frozen=True)
class QualityConfig:
    """Thresholds of the gate (module docstring); a flag that is off never fires."""

    dark: bool = True
    dark_below: float = 16.0  # mean luma: a frame darker than this shows nothing usable
    uniform: bool = True
    uniform_below: float = 4.0  # luma std: about the sensor noise of a blank frame
    blur: bool = True
    blur_above: float = 0.7  # blur effect: strongly blurred frames only (sewer CCTV is soft to begin with)
    analysis_height: int = 144
    region: float = 0.6

    def __post_init__(self):
        if not 0 < self.region <= 1 or self.analysis_height < 8:
            raise ValueError(f"quality region must be in (0, 1] and analysis_height >= 8, got {self.region}, "
                             f"{self.analysis_height}")


@dataclasses.dataclass(frozen=True)
class Quality:
    """The measures of one frame and the flags they raise."""

    luma_mean: float
    luma_std: float
    blur_effect: float
    dark: bool
    uniform: bool
    blurred: bool

    @property
    def flagged(self) -> bool:
        return self.dark or self.uniform or self.blurred

    @property
    def flags(self) -> list:
        return [name for name in FLAGS if getattr(self, name)]


def luma_region(frame: np.ndarray, config: QualityConfig) -> np.ndarray:
    """The float64 luma the measures are taken on: resized to the analysis height, central region."""
    grey = Image.fromarray(np.asarray(frame, dtype=np.uint8), "RGB").convert("L")
    width = max(1, int(round(grey.width * config.analysis_height / grey.height)))
    grey = np.asarray(grey.resize((width, config.analysis_height), Image.BILINEAR), dtype=np.float64)
    h, w = grey.shape
    dh, dw = int(round(h * (1 - config.region) / 2)), int(round(w * (1 - config.region) / 2))
    return grey[dh:h - dh, dw:w - dw]


def blur_effect(grey: np.ndarray, taps: int = BLUR_TAPS) -> float:
    """Crete et al.'s blur effect of a float luma image (module docstring), 0 (sharp) .. 1 (blurred)."""
    from skimage.measure import blur_effect as crete  # on first use: scikit-image takes 0.5 s to import

    if min(grey.shape) < 4:  # scikit-image measures inside a 3-px border: nothing is left to measure
        return 1.0
    return float(crete(grey, h_size=taps))


def assess(frame: np.ndarray, config: QualityConfig = QualityConfig()) -> Quality:
    """The measures and flags of an RGB uint8 frame [H, W, 3]."""
    g = luma_region(frame, config)
    mean, std, blur = float(g.mean()), float(g.std()), blur_effect(g)
    return Quality(mean, std, blur,
                   dark=config.dark and mean < config.dark_below,
                   uniform=config.uniform and std < config.uniform_below,
                   blurred=config.blur and blur > config.blur_above)
