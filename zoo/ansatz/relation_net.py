"""Relation Network f(X) = ρ(Σ_{i,j} ψ(x_i, x_j)) on sets x: (B, N, D)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

import torch
from torch import Tensor

from zoo.ansatz.base import StandardizedSetRegressor
from zoo.ansatz.blocks import Activation, check_sets, mlp, mlp_size
from zoo.core.config import Footprint, Interval
from zoo.core.registry import register_model

__all__ = ["RelationNet"]


@register_model(
    "relation_net",
    data="sets",
    data_defaults={"n_set": 8, "sampler": "sphere", "target": "pairwise_energy"},
    shared=("dim",),
    paper="Zweig & Bruna, Exponential Separations in Symmetric Neural Networks (NeurIPS 2022)",
)
class RelationNet(StandardizedSetRegressor):
    """Relation Network f(X) = ρ(Σ_{i,j} ψ(x_i, x_j)): symmetric, pairwise, width-L bottleneck.

    ψ: R^{2D} → R^L acts on the concatenation [x_i, x_j] of every ordered pair (i = j
    included); x: (B, N, D) → (B,). Cost O(B N² L). Output standardised like DeepSets.
    """

    def __init__(
        self,
        dim: Annotated[int, Interval(ge=1)] = 3,
        width: Annotated[int, Interval(ge=1)] = 16,
        hidden: Annotated[int, Interval(ge=1)] = 64,
        depth: Annotated[int, Interval(ge=1)] = 2,
        out_dim: Annotated[int, Interval(ge=1)] = 1,
        pool: Literal["sum", "mean"] = "sum",
        activation: Activation = "silu",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.psi = mlp([2 * dim] + [hidden] * depth + [width], activation)
        self.rho = mlp([width] + [hidden] * depth + [out_dim], activation)

    @classmethod
    def footprint(cls, hp: Mapping[str, Any], data: Mapping[str, Any]) -> Footprint:
        """ψ and ρ, and one batch: the (B, N, N, 2D) pairs and 2 values per hidden unit of ψ
        for every pair, of ρ per set."""
        h, k, w = hp["hidden"], hp["depth"], hp["width"]
        psi_p, psi_m = mlp_size([2 * hp["dim"]] + [h] * k + [w])
        rho_p, rho_m = mlp_size([w] + [h] * k + [hp["out_dim"]])
        b, n = data.get("batch_size", 1), data.get("n_set", 1)
        act = b * n * n * (2 * hp["dim"] + 2 * h * k + w) + b * (2 * h * k + w)
        return cls._footprint(psi_p + rho_p, psi_m + rho_m, act)

    def embed(self, x: Tensor) -> Tensor:
        """Σ_{i,j} ψ(x_i, x_j) (or the mean over pairs): x: (B, N, D) → (B, L)."""
        check_sets(x, None, self.hparams.dim)
        b, n, d = x.shape
        pairs = torch.cat(
            [x.unsqueeze(2).expand(b, n, n, d), x.unsqueeze(1).expand(b, n, n, d)], dim=-1
        )
        h = self.psi(pairs)  # (B, N, N, L)
        return h.sum((1, 2)) if self.hparams.pool == "sum" else h.mean((1, 2))

    def forward(self, x: Tensor) -> Tensor:
        """f(X): x: (B, N, D) → (B,) (or (B, out_dim))."""
        return self._out(self.rho(self.embed(x)))
