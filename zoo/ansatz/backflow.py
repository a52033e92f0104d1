"""Backflow (FermiNet-style) antisymmetric ansatz: determinants of orbitals that depend on the
whole set, φ_j(x_i; {x_k}), computed by permutation-equivariant layers."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Annotated, Any

import torch
from torch import Tensor, nn

from zoo.ansatz.base import SetRegressor
from zoo.ansatz.blocks import check_sets, signed_logsumexp
from zoo.ansatz.slater import L25_DATA
from zoo.core.config import Footprint, Interval
from zoo.core.registry import register_model

__all__ = ["Backflow", "EquivariantLayer"]


def _pair_features(x: Tensor) -> Tensor:
    """g⁰_ik = (x_i − x_k, |x_i − x_k|): x: (B, N, D) → (B, N, N, D + 1); the diagonal k = i
    is 0 (its norm taken as |1| − 1, so its gradient is finite)."""
    d = x.unsqueeze(2) - x.unsqueeze(1)  # (B, N, N, D)
    eye = torch.eye(x.shape[1], dtype=torch.bool, device=x.device)[..., None]
    r = torch.where(eye, torch.ones_like(d), d).norm(dim=-1, keepdim=True)
    return torch.cat([d, torch.where(eye, torch.zeros_like(r), r)], dim=-1)


class EquivariantLayer(nn.Module):
    """One FermiNet layer of the one- and two-particle streams h_i, g_ik (Pfau et al. 2020):

        h_i ← tanh(V [h_i, mean_k h_k, mean_{k≠i} g_ik] + b) (+ h_i),
        g_ik ← tanh(W g_ik + c) (+ g_ik),

    the residual when the widths agree; the last layer (``g_out=None``) has no pair update.
    Permuting the points permutes h's rows and g's rows and columns alike (equivariance).
    h: (B, N, H), g: (B, N, N, G) → (B, N, H'), (B, N, N, G') (or None).
    """

    def __init__(self, h_in: int, g_in: int, h_out: int, g_out: int | None) -> None:
        super().__init__()
        self.one = nn.Linear(2 * h_in + g_in, h_out)
        self.two = nn.Linear(g_in, g_out) if g_out is not None else None

    def forward(self, h: Tensor, g: Tensor) -> tuple[Tensor, Tensor | None]:
        n = h.shape[1]
        off = 1 - torch.eye(n, dtype=g.dtype, device=g.device)[None, :, :, None]
        g_mean = (g * off).sum(2) / max(n - 1, 1)  # (B, N, G): mean over k ≠ i
        h_mean = h.mean(1, keepdim=True).expand_as(h)
        h_new = torch.tanh(self.one(torch.cat([h, h_mean, g_mean], dim=-1)))
        h_new = h_new + h if h_new.shape == h.shape else h_new
        if self.two is None:
            return h_new, None
        g_new = torch.tanh(self.two(g))
        return h_new, g_new + g if g_new.shape == g.shape else g_new


@register_model(
    "backflow",
    data="sets",
    shared=("n_set", "dim"),
    data_defaults=L25_DATA,
    defaults={"lr": 1e-2},
    paper="Pfau, Spencer, Matthews & Foulkes, Ab initio solution of the many-electron "
    "Schrödinger equation with deep neural networks (FermiNet, Phys. Rev. Research 2020)",
)
class Backflow(SetRegressor):
    """Backflow ansatz f(X) = Σ_{l≤K} det[φ^l_j(x_i; {x_k})], the orbitals seeing every point.

    ``layers`` :class:`EquivariantLayer` s (one-particle width ``hidden``, pair width
    ``pair_hidden``) map the one-particle features h⁰_i = x_i and pair features
    g⁰_ik = (x_i − x_k, |x_i − x_k|) to h_i; the orbitals are

        φ^l_j(x_i; X) = (w^l_j · h_i + b^l_j) · exp(−a^l_j |x_i|²),  a = softplus(·) > 0,

    a Gaussian envelope (the trap's; FermiNet uses exponentials for atoms). Permuting the points
    permutes the rows of every orbital matrix, so f is antisymmetric for any weights, while each
    orbital depends on the whole set (backflow), which a Slater sum's orbitals φ_j(x_i) do not.
    Log domain: (sign, log|det|) = slogdet, combined over l by a max-shifted signed
    log-sum-exp. x: (B, N, D) → f: (B,); :meth:`signed_log` gives (sign, log|f|).
    """

    def __init__(
        self,
        n_set: Annotated[int, Interval(ge=1)] = 4,
        dim: Annotated[int, Interval(ge=1)] = 1,
        n_dets: Annotated[int, Interval(ge=1)] = 1,
        hidden: Annotated[int, Interval(ge=1)] = 20,
        pair_hidden: Annotated[int, Interval(ge=1)] = 8,
        layers: Annotated[int, Interval(ge=1)] = 2,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        widths = [(dim, dim + 1)] + [(hidden, pair_hidden)] * (layers - 1) + [(hidden, None)]
        self.layers = nn.ModuleList(EquivariantLayer(*a, *b) for a, b in itertools.pairwise(widths))
        self.orbital = nn.Linear(hidden, n_dets * n_set)
        # envelope a = softplus(·) = 1/2 at initialisation: e^{−x²/2}, the trap's
        self.envelope = nn.Parameter(torch.full((n_dets, n_set), math.log(math.e**0.5 - 1)))

    @classmethod
    def check_hparams(cls, hp: Mapping[str, Any], data: Mapping[str, Any]) -> None:
        """``hidden`` ≥ N: N orbitals linear in fewer features make every determinant 0."""
        if hp["hidden"] < hp["n_set"]:
            raise ValueError(
                f"backflow: hidden={hp['hidden']} < n_set={hp['n_set']} makes the N orbitals "
                "linear combinations of fewer features, so every determinant is 0"
            )

    @classmethod
    def size(cls, hp: Mapping[str, Any]) -> tuple[int, int]:
        """(parameters, modules) of the model built from ``hp``, without building it."""
        d, h, g, n, k = hp["dim"], hp["hidden"], hp["pair_hidden"], hp["n_set"], hp["n_dets"]
        widths = [(d, d + 1)] + [(h, g)] * (hp["layers"] - 1) + [(h, 0)]
        params = sum(
            (2 * hi + gi) * ho + ho + gi * go + go * (go > 0)
            for (hi, gi), (ho, go) in itertools.pairwise(widths)
        )
        return params + h * k * n + k * n + k * n, 1 + 3 * hp["layers"]

    @classmethod
    def footprint(cls, hp: Mapping[str, Any], data: Mapping[str, Any]) -> Footprint:
        """The layers and one batch: per layer the (B, N, N, pair_hidden) pair stream and the
        (B, N, 3·hidden) one-particle inputs, and the (B, K, N, N) orbital matrices (~4 times
        through slogdet)."""
        b, n, k = data.get("batch_size", 1), hp["n_set"], hp["n_dets"]
        per_layer = b * n * n * 2 * hp["pair_hidden"] + b * n * 4 * hp["hidden"]
        act = hp["layers"] * per_layer + 4 * b * k * n * n
        return cls._footprint(*cls.size(hp), act)

    def orbital_matrix(self, x: Tensor) -> Tensor:
        """Φ[b, l, i, j] = φ^l_j(x_i; X): x: (B, N, D) → (B, K, N, N)."""
        check_sets(x, self.hparams.n_set, self.hparams.dim)
        b, n = x.shape[:2]
        h, g = x, _pair_features(x)
        for layer in self.layers:
            h, g = layer(h, g)  # g is None after the last layer
        phi = self.orbital(h).reshape(b, n, self.hparams.n_dets, n).permute(0, 2, 1, 3)
        a = nn.functional.softplus(self.envelope)[None, :, None, :]  # (1, K, 1, N)
        return phi * torch.exp(-a * (x**2).sum(-1)[:, None, :, None])

    def signed_log(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(sign f, log|f|) = signed-LSE_l slogdet(Φ^l): x: (B, N, D) → 2×(B,)."""
        sign, logabs = torch.linalg.slogdet(self.orbital_matrix(x))  # (B, K) each
        return signed_logsumexp(sign, logabs, dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        """f(X) = sign · exp(log|f|): x: (B, N, D) → (B,)."""
        sign, logabs = self.signed_log(x)
        return sign * torch.exp(logabs)

    def model_card_extra(self, metrics: dict[str, Any]) -> str:
        hp = self.hparams
        return super().model_card_extra(metrics) + (
            f"\n\nAnsatz: K = {hp.n_dets} determinant(s) of backflow orbitals φ_j(x_i; X) from "
            f"{hp.layers} permutation-equivariant layer(s) (one-particle width {hp.hidden}, "
            f"pair width {hp.pair_hidden}), {self.size(hp)[0]} parameters."
        )
