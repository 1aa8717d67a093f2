"""Public-text checkpoints of the byte model (weights + JSON cards)."""
