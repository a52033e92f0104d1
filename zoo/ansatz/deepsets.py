"""DeepSets f(X) = ρ(Σ_i φ(x_i)) on sets x: (B, N, D)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from torch import Tensor

from zoo.ansatz.base import StandardizedSetRegressor
from zoo.ansatz.blocks import Activation, check_sets, mlp, mlp_size
from zoo.core.config import Footprint, Interval
from zoo.core.registry import register_model

__all__ = ["DeepSets"]


@register_model(
    "deepsets",
    data="sets",
    data_defaults={"n_set": 8, "sampler": "sphere", "target": "pairwise_energy"},
    shared=("dim",),
    paper="Zweig & Bruna, Exponential Separations in Symmetric Neural Networks (NeurIPS 2022)",
)
class DeepSets(StandardizedSetRegressor):
    """DeepSets f(X) = ρ(Σ_i φ(x_i)): a symmetric network with a width-L sum bottleneck.

    φ: R^D → R^L and ρ: R^L → R^{out} are MLPs with ``depth`` hidden layers of ``hidden``
    units; x: (B, N, D) → (B,) (or (B, out_dim)). The output is μ + σ ρ(·) with (μ, σ) the
    training labels' mean and std (``standardize``, see :class:`StandardizedSetRegressor`).
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
        self.phi = mlp([dim] + [hidden] * depth + [width], activation)
        self.rho = mlp([width] + [hidden] * depth + [out_dim], activation)

    @classmethod
    def footprint(cls, hp: Mapping[str, Any], data: Mapping[str, Any]) -> Footprint:
        """φ and ρ, and one batch: 2 values per hidden unit of φ at every point (B·N) and of
        ρ per set (B)."""
        h, k, w = hp["hidden"], hp["depth"], hp["width"]
        phi_p, phi_m = mlp_size([hp["dim"]] + [h] * k + [w])
        rho_p, rho_m = mlp_size([w] + [h] * k + [hp["out_dim"]])
        b, n = data.get("batch_size", 1), data.get("n_set", 1)
        act = b * n * (hp["dim"] + 2 * h * k + w) + b * (2 * h * k + w)
        return cls._footprint(phi_p + rho_p, phi_m + rho_m, act)

    def embed(self, x: Tensor) -> Tensor:
        """The pooled latent Σ_i φ(x_i) (or the mean): x: (B, N, D) → (B, L)."""
        check_sets(x, None, self.hparams.dim)
        h = self.phi(x)
        return h.sum(1) if self.hparams.pool == "sum" else h.mean(1)

    def forward(self, x: Tensor) -> Tensor:
        """f(X): x: (B, N, D) → (B,) (or (B, out_dim))."""
        return self._out(self.rho(self.embed(x)))
