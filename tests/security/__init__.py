"""Hostile backups: whoever can write to the bucket must not write outside the drill, run commands or pass."""
