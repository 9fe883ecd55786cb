"""File decoding and encoding for imaging models (numpy-level; no torch)."""
