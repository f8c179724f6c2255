"""Placeholder: filled in by its feature's work."""
