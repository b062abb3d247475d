"""The demo's stages, one module per stage or group; sfr_jax.demo.run lists them in order."""
