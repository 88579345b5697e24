"""Procedural image datasets: generated on the spot, so examples and tests never download."""
