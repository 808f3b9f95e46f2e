"""Data: datasets (generated, bundled, user files), splits, normalisation and batching."""
