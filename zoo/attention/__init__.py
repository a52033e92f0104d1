"""Random-feature attention, RF-MLP baseline and low-rank multi-head attention (SPEC §4).

Importing this package registers the models ``rf_attention``, ``rf_mlp``,
``lowrank_attention``, the key-invariant targets of :mod:`zoo.attention.targets` in the
shared ``sets`` datamodule, and the figures ``rf_attention_risk``, ``lowrank_attention_rank``.
"""

from zoo.attention import figures, targets  # noqa: F401  (registration side effects)
from zoo.attention.models import RFMLP, LowRankAttention, RandomFeatureModel, RFAttention
from zoo.attention.ridge import ridge_objective, ridge_solve

__all__ = [
    "RFMLP",
    "LowRankAttention",
    "RFAttention",
    "RandomFeatureModel",
    "ridge_objective",
    "ridge_solve",
]
