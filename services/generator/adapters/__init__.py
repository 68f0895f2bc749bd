"""Real implementations of the generator's ports."""
