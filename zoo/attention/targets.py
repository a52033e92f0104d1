"""Exact targets of the attention family: permutation-invariant in the keys.

Convention (shared with :mod:`zoo.sets`): an input ``x: (B, N+1, d)`` holds the query
``x₀ = x[:, 0]`` and the keys ``x₁..x_N = x[:, 1:]``, all on the unit sphere S^{d−1}.

Targets of the random-feature-attention paper (Fu, Guo, Bai, Mei) are averages over the keys
of a function of the query–key inner product (no ⟨x_i, x_j⟩ cross terms):

    f(x) = (1/N) Σ_{i=1}^{N} F(⟨x₀, x_i⟩)

with ``F`` a power (``key_power``), a normalised Hermite polynomial of the rescaled inner
product √d·⟨x₀, x_i⟩ ≈ N(0, 1) (``key_hermite``), or an exponential (``key_exp``); and an
average of a single-index function of the keys only (``key_index``). The rank paper
(Amsel, Yehudai, Bruna) asks for the nearest key ``argmax_i ⟨x_i, x₀⟩`` itself, a vector in
R^d (``nearest_neighbour``), or the farthest one (``farthest_neighbour``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from zoo.sets import register_target

__all__ = [
    "TARGETS",
    "farthest_neighbour",
    "hermite_normalised",
    "key_exp",
    "key_hermite",
    "key_index",
    "key_power",
    "nearest_neighbour",
    "query_key_products",
]


def _check(x: Tensor) -> None:
    if x.dim() != 3 or x.shape[1] < 2:
        raise ValueError(
            f"expected x: (B, N+1, d) with a query and at least one key, got {tuple(x.shape)}"
        )


def query_key_products(x: Tensor) -> Tensor:
    """``s_i = ⟨x₀, x_i⟩`` for every key. x: (B, N+1, d) → (B, N)."""
    _check(x)
    return torch.einsum("bd,bnd->bn", x[:, 0], x[:, 1:])


def hermite_normalised(z: Tensor, k: int) -> Tensor:
    """Normalised probabilists' Hermite polynomial He_k(z)/√(k!) (orthonormal under N(0,1)).

    Recurrence He_{j+1}(z) = z·He_j(z) − j·He_{j−1}(z), evaluated exactly in floating point.
    """
    if k < 0:
        raise ValueError(f"Hermite degree must be >= 0, got {k}")
    prev, cur = torch.ones_like(z), z
    if k == 0:
        return prev
    for j in range(1, k):
        prev, cur = cur, z * cur - j * prev
    return cur / math.sqrt(math.factorial(k))


@register_target("key_power", symmetry="invariant_in_keys")
def key_power(x: Tensor, p: int = 2) -> Tensor:
    """f(x) = (1/N) Σ_i ⟨x₀, x_i⟩^p. x: (B, N+1, d) → (B,)."""
    if p < 0:
        raise ValueError(f"power p must be >= 0, got {p}")
    return query_key_products(x).pow(p).mean(dim=1)


@register_target("key_hermite", symmetry="invariant_in_keys")
def key_hermite(x: Tensor, k: int = 2) -> Tensor:
    """f(x) = (1/N) Σ_i He_k(√d ⟨x₀, x_i⟩)/√(k!). x: (B, N+1, d) → (B,).

    √d⟨x₀, x_i⟩ → N(0, 1) as d → ∞, so each term has variance ≈ 1 and the degree-k
    components are (asymptotically) orthogonal: a clean "target of degree k".
    """
    d = x.shape[-1]
    return hermite_normalised(math.sqrt(d) * query_key_products(x), k).mean(dim=1)


@register_target("key_exp", symmetry="invariant_in_keys")
def key_exp(x: Tensor, beta: float = 1.0) -> Tensor:
    """f(x) = (1/N) Σ_i exp(β √d ⟨x₀, x_i⟩). x: (B, N+1, d) → (B,)."""
    d = x.shape[-1]
    return torch.exp(beta * math.sqrt(d) * query_key_products(x)).mean(dim=1)


@register_target("key_index", symmetry="invariant_in_keys")
def key_index(x: Tensor, p: int = 2) -> Tensor:
    """f(x) = (1/N) Σ_i He_p(√d ⟨e₁, x_i⟩)/√(p!): a query-independent single-index average.

    x: (B, N+1, d) → (B,).
    """
    _check(x)
    d = x.shape[-1]
    return hermite_normalised(math.sqrt(d) * x[:, 1:, 0], p).mean(dim=1)


def _pick(x: Tensor, idx: Tensor) -> Tensor:
    keys = x[:, 1:]
    return keys.gather(1, idx[:, None, None].expand(-1, 1, keys.shape[-1])).squeeze(1)


@register_target("nearest_neighbour", symmetry="invariant_in_keys")
def nearest_neighbour(x: Tensor) -> Tensor:
    """The key most aligned with the query, x_{i*} with i* = argmax_i ⟨x_i, x₀⟩.

    x: (B, N+1, d) → (B, d).
    """
    return _pick(x, query_key_products(x).argmax(dim=1))


@register_target("farthest_neighbour", symmetry="invariant_in_keys")
def farthest_neighbour(x: Tensor) -> Tensor:
    """The key least aligned with the query, argmin_i ⟨x_i, x₀⟩. x: (B, N+1, d) → (B, d)."""
    return _pick(x, query_key_products(x).argmin(dim=1))


@register_target("self_farthest", symmetry="equivariant")
def self_farthest(x: Tensor) -> Tensor:
    """Self-attention variant: every point's farthest point, x_{j*(i)} with
    j*(i) = argmin_j ⟨x_i, x_j⟩, for all N points. x: (B, N, d) → (B, N·d).
    """
    gram = x @ x.transpose(1, 2)  # (B, N, N); the diagonal (= 1) is never the argmin
    idx = gram.argmin(dim=2)  # (B, N)
    return x.gather(1, idx[..., None].expand(-1, -1, x.shape[-1])).flatten(1)


TARGETS = {
    "key_power": key_power,
    "key_hermite": key_hermite,
    "key_exp": key_exp,
    "key_index": key_index,
    "nearest_neighbour": nearest_neighbour,
    "farthest_neighbour": farthest_neighbour,
    "self_farthest": self_farthest,
}
