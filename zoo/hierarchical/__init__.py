"""Generative hierarchical models, exact belief propagation, U-Net/ConvNet BP models
(Mei, "U-Nets as Belief Propagation", 2024, on the Random Hierarchy Model of Petrini,
Cagnetta, Wyart et al.).

Importing the package registers everything in it: the ``ghm`` datamodule, the models
``unet_bp``, ``unet_bp_sigma``, ``unet_bp_noskip``, ``convnet_bp`` and their figures.
See docs/hierarchical.md.
"""

from zoo.core.registry import import_submodules

import_submodules(__name__)
