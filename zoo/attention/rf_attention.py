"""Random-feature attention (``rf_attention``): frozen random query-key heads, trained values.

Seed: Fu, Guo, Bai, Mei, "What can a Single Attention Layer Learn? A Study Through the Random
Features Lens" (NeurIPS 2023). Inputs, metrics and the ridge / SGD fit: :mod:`zoo.attention.base`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any

import torch
from torch import Tensor, nn

from zoo.attention.base import (
    RF_DATA,
    Activation,
    RandomFeatureModel,
    apply_activation,
    check_set_input,
)
from zoo.core import Interval, register_model
from zoo.core.config import Footprint

__all__ = ["RFAttention"]


@register_model(
    "rf_attention",
    data="sets",
    defaults={"lr": 1e-2},
    data_defaults={k: v for k, v in RF_DATA.items() if k != "dim"},
    shared=("dim",),
    paper="Fu, Guo, Bai, Mei, What can a Single Attention Layer Learn? A Study Through the "
    "Random Features Lens (NeurIPS 2023)",
)
class RFAttention(RandomFeatureModel):
    """Random-feature attention: M heads with frozen random query-key matrices, trained values.

    f(x) = (1/√M) Σ_{m=1}^{M} (1/N) Σ_{i=1}^{N} σ(⟨x₀, W_m x_i⟩) (⟨v_m, x_i⟩ + c_m),

    W_m = w_mean·√d·I + G_m, G_m entries iid N(0, 1) (frozen, persistent buffer), so that
    ⟨x₀, G_m x_i⟩ ~ N(0, 1) for unit vectors and the mean part w_mean·√d·⟨x₀, x_i⟩ has the
    same order for random keys. Only V = (v_m, c_m) is trained: the features
    Φ_m(x) = (1/(N√M)) Σ_i σ(⟨x₀, W_m x_i⟩) [x_i; 1] make f = ⟨Φ(x), V⟩ linear in V.

    The 1/√M (a reparametrisation v_m → v_m/√M of the random-feature attention model of
    Fu, Guo, Bai and Mei, 2023) makes ``l2`` and the learning rate independent of M.
    ``value_bias=False`` drops c_m (exactly that paper's model); then f(−x) = −f(x), so that
    model cannot fit any nonzero function of the inner products ⟨x₀, x_i⟩ (they are
    invariant under x → −x): the bias c_m, a constant coordinate appended to the values, is
    on by default.

    Args:
        dim: d.
        heads: M (P = M·d trained parameters per output).
        activation: σ.
        w_mean: non-zero mean of W_m in units of √d·I (0 = the zero-mean model).
        value_bias: append a constant 1 to the values (trained c_m), see above.
    """

    def __init__(
        self,
        dim: Annotated[int, Interval(ge=1)] = 8,
        heads: Annotated[int, Interval(ge=1)] = 128,
        activation: Activation = "relu",
        w_mean: float = 0.0,
        value_bias: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        g = self._generator()
        w = torch.randn(heads, dim, dim, generator=g)
        w = w + w_mean * math.sqrt(dim) * torch.eye(dim)
        self.register_buffer("W", w, persistent=True)
        self.readout = nn.Parameter(torch.zeros(self.num_features, self.out_dim))

    @classmethod
    def footprint(cls, hp: Mapping[str, Any], data: Mapping[str, Any]) -> Footprint:
        """W (M, d, d) frozen, P = M(d + 1) features; per sample u (M, d), the (M, N) logits
        and activations and Φ (see :meth:`RandomFeatureModel._footprint`)."""
        m, d, keys = hp["heads"], hp["dim"], data.get("n_set", 2) - 1
        p = m * (d + int(hp["value_bias"]))
        return cls._footprint(hp, data, m * d * d, p, m * (d + 2 * keys) + p)

    @property
    def num_features(self) -> int:
        return self.hparams.heads * (self.hparams.dim + int(self.hparams.value_bias))

    def features(self, x: Tensor) -> Tensor:
        """Φ(x)_{m,:} = (1/(N√M)) Σ_i σ(⟨x₀, W_m x_i⟩) [x_i; 1].

        x: (B, N+1, d) → (B, M·(d+1)) (M·d without value bias).
        """
        check_set_input(x, self.hparams.dim)
        q, keys = x[:, 0], x[:, 1:]
        u = torch.einsum("bd,mde->bme", q, self.W)  # x₀ᵀ W_m: (B, M, d)
        logits = torch.einsum("bme,bne->bmn", u, keys)  # ⟨x₀, W_m x_i⟩: (B, M, N)
        s = apply_activation(self.hparams.activation, logits)
        if self.hparams.value_bias:
            keys = torch.cat([keys, keys.new_ones(*keys.shape[:2], 1)], dim=-1)
        scale = keys.shape[1] * math.sqrt(self.hparams.heads)
        phi = torch.einsum("bmn,bnd->bmd", s, keys) / scale
        return phi.reshape(len(x), -1)
