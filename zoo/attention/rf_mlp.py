"""Random-feature MLP on the flattened set (``rf_mlp``), the baseline of ``rf_attention``.

Seed: Fu, Guo, Bai, Mei, "What can a Single Attention Layer Learn? A Study Through the Random
Features Lens" (NeurIPS 2023), which compares random-feature attention with this standard
two-layer random-feature model. Inputs, metrics and the fit: :mod:`zoo.attention.base`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any

import torch
from torch import Tensor, nn

from zoo.attention.base import RF_DATA, Activation, RandomFeatureModel, apply_activation
from zoo.core import Interval, register_model
from zoo.core.config import Footprint

__all__ = ["RFMLP"]


@register_model(
    "rf_mlp",
    data="sets",
    defaults={"lr": 1e-2},
    data_defaults={k: v for k, v in RF_DATA.items() if k not in ("n_set", "dim")},
    shared=("n_set", "dim"),
    paper="Fu, Guo, Bai, Mei (2023): the standard two-layer random-feature baseline",
)
class RFMLP(RandomFeatureModel):
    """Two-layer random-feature MLP on the flattened input, the baseline of ``rf_attention``.

    f(x) = (1/√P) Σ_{j=1}^{P} a_j σ(⟨w_j, vec(x)⟩), w_j ~ N(0, I/(N+1)) frozen (persistent
    buffer); vec(x) ∈ R^{(N+1)d} has norm √(N+1) so ⟨w_j, vec(x)⟩ ~ N(0, 1); only a is
    trained (1/√P: the same kernel normalisation as ``rf_attention``).

    Args:
        dim: d.
        n_set: N+1, the set size (query + keys) the input layer is built for.
        width: P, number of random features.
        match_heads: if > 0, set P = match_heads·(d+1): the same number of trained
            parameters as ``rf_attention`` (with value bias) with that many heads
            (overrides ``width``).
        activation: σ.
    """

    def __init__(
        self,
        dim: Annotated[int, Interval(ge=1)] = 8,
        n_set: Annotated[int, Interval(ge=2)] = 9,
        width: Annotated[int, Interval(ge=1)] = 1152,
        match_heads: Annotated[int, Interval(ge=0)] = 0,
        activation: Activation = "relu",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.width = match_heads * (dim + 1) if match_heads > 0 else width
        g = self._generator()
        w = torch.randn(n_set * dim, self.width, generator=g) / math.sqrt(n_set)
        self.register_buffer("W", w, persistent=True)
        self.readout = nn.Parameter(torch.zeros(self.width, self.out_dim))

    @classmethod
    def footprint(cls, hp: Mapping[str, Any], data: Mapping[str, Any]) -> Footprint:
        """W ((N+1)d, P) frozen; per sample the P pre-activations and features (see
        :meth:`RandomFeatureModel._footprint`)."""
        d = hp["dim"]
        p = hp["match_heads"] * (d + 1) if hp["match_heads"] > 0 else hp["width"]
        return cls._footprint(hp, data, hp["n_set"] * d * p, p, 2 * p)

    @property
    def num_features(self) -> int:
        return self.width

    def features(self, x: Tensor) -> Tensor:
        """Φ(x)_j = σ(⟨w_j, vec(x)⟩). x: (B, N+1, d) → (B, P)."""
        n, d = self.hparams.n_set, self.hparams.dim
        if x.dim() != 3 or x.shape[1:] != (n, d):
            raise ValueError(f"rf_mlp was built for x: (B, {n}, {d}), got {tuple(x.shape)}")
        pre = x.reshape(len(x), -1) @ self.W  # ⟨w_j, vec(x)⟩: (B, P)
        return apply_activation(self.hparams.activation, pre) / math.sqrt(self.width)
