"""Flax NNX modules: CLIP towers, RS adapters, SFR-Net (MEF head, GR graph)."""
