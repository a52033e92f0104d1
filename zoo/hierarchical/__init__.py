"""Generative hierarchical models, exact belief propagation, U-Net/ConvNet BP models (SPEC §2).

Registers the ``ghm`` datamodule and the models ``unet_bp``, ``unet_bp_sigma``,
``unet_bp_noskip`` and ``convnet_bp``; ``zoo.hierarchical.figures`` registers the figures.
"""

from zoo.hierarchical import data, models  # noqa: F401  (registration side effects)

from zoo.hierarchical import figures  # noqa: F401  isort: skip
