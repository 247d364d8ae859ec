"""rigging."""
