"""Training: the loop, the recipe that assembles it, checkpoints and signal handling."""
