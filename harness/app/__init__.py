"""Start the target app against staging, wait for its deep health, talk to its API."""
