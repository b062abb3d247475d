"""Training: state split, optimizer and schedule, loss, jitted steps, loop, checkpoints."""
