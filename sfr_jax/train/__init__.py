"""Training: optimiser and schedule, SCL loss, the jitted train step, a run's state and checkpoints, the
loop, the dry run, and reading a workdir back."""
