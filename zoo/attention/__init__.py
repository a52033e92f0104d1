"""Random-feature attention, RF-MLP baseline, low-rank multi-head attention and transformers.

Attention-layer theory: random-feature attention and its random-feature MLP baseline
(Fu, Guo, Bai, Mei, NeurIPS 2023), and the rank of multi-head attention (Amsel, Yehudai,
Bruna, 2024). One architecture per module: :mod:`~zoo.attention.rf_attention`,
:mod:`~zoo.attention.rf_mlp`, :mod:`~zoo.attention.lowrank_attention`,
:mod:`~zoo.attention.rank_transformer`, with the shared metric and base classes in
:mod:`~zoo.attention.base` and the closed-form fit in :mod:`~zoo.attention.ridge`.

Importing this package imports every module in it, which registers the models
``rf_attention``, ``rf_mlp``, ``lowrank_attention``, ``rank_transformer`` (and its rank-8
control ``rank_transformer_r8``), the key-invariant targets of
:mod:`zoo.attention.targets` in the shared ``sets`` datamodule, and the figures.
"""

from zoo.attention.base import RandomFeatureModel, error_columns, error_statistics
from zoo.attention.lowrank_attention import LowRankAttention
from zoo.attention.rank_transformer import RankTransformer
from zoo.attention.rf_attention import RFAttention
from zoo.attention.rf_mlp import RFMLP
from zoo.attention.ridge import ridge_objective, ridge_solve
from zoo.core.registry import import_submodules

import_submodules(__name__)  # the rest (targets, figures, ...) registers on import

__all__ = [
    "RFMLP",
    "LowRankAttention",
    "RFAttention",
    "RandomFeatureModel",
    "RankTransformer",
    "error_columns",
    "error_statistics",
    "ridge_objective",
    "ridge_solve",
]
