"""Figures of the attention family (filled below)."""
