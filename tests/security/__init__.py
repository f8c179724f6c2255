"""Attacks by whoever can write the backup bucket, each built for real and answered with the safe outcome."""
