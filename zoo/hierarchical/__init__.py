"""Generative hierarchical models, exact belief propagation, U-Net/ConvNet BP models (SPEC §2)."""

from zoo.hierarchical import data  # noqa: F401  (registers the "ghm" datamodule)
