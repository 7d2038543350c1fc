"""The bottom layer: the vocabulary, settings, logging and metrics every part shares (imports nothing of ours)."""
