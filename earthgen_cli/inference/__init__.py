"""Tiling, blending, scene translation and joint generation: where io meets models."""
