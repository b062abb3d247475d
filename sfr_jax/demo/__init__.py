"""`sfr-jax demo` (`make demo`): the whole product on an embedded miniature, on a CPU, in minutes."""
