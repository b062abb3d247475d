"""sfr_jax: SFR-Net (CVPR 2026) for multi-label zero-shot sewer defect detection, in JAX/Flax NNX."""

__version__ = "0.1.0"
