"""Practitioner's tools beside the training path: comparing runs, and more to come."""
