"""Terminal output: a live progress bar on a terminal, plain lines elsewhere."""
