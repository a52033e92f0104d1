"""Random-feature attention, RF-MLP baseline and low-rank multi-head attention.

Single-attention-layer theory: random-feature attention and its random-feature MLP baseline
(Fu, Guo, Bai, Mei, NeurIPS 2023), and the rank of multi-head attention (Amsel, Yehudai,
Bruna, 2024). One architecture per module: :mod:`~zoo.attention.rf_attention`,
:mod:`~zoo.attention.rf_mlp`, :mod:`~zoo.attention.lowrank_attention`, with the shared
metric and base classes in :mod:`~zoo.attention.base` and the closed-form fit in
:mod:`~zoo.attention.ridge`.

Importing this package registers the models ``rf_attention``, ``rf_mlp``,
``lowrank_attention``, the key-invariant targets of :mod:`zoo.attention.targets` in the
shared ``sets`` datamodule, and the figures ``rf_attention_risk``, ``lowrank_attention_rank``.
"""

from zoo.attention import figures, targets  # noqa: F401  (registration side effects)
from zoo.attention.base import NormalisedError, RandomFeatureModel
from zoo.attention.lowrank_attention import LowRankAttention
from zoo.attention.rf_attention import RFAttention
from zoo.attention.rf_mlp import RFMLP
from zoo.attention.ridge import ridge_objective, ridge_solve

__all__ = [
    "RFMLP",
    "LowRankAttention",
    "NormalisedError",
    "RFAttention",
    "RandomFeatureModel",
    "ridge_objective",
    "ridge_solve",
]
