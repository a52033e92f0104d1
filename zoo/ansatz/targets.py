"""Exact targets of the ansatz family, registered in the ``sets`` target registry.

- ``pairwise_energy`` (symmetric): E(X) = Σ_{i<j} u(⟨x_i, x_j⟩), u(t) = exp(β t) (``u="exp"``,
  default β = 2), u(t) = t^p (``u="power"``, ``degree=p``) or the Legendre polynomial P_p of
  dimension D (``u="gegenbauer"``: only degree-p spherical harmonics).
- ``calogero`` (antisymmetric, D = 1): Ψ_λ(x) = Π_{i<j} (x_i − x_j)|x_i − x_j|^{λ−1}
  · exp(−Σ_i x_i²/2). λ = 1 is the free-fermion ground state of the harmonic trap, a single
  Slater determinant of Hermite functions; non-integer λ is no finite Slater sum.
- ``sym_single_index`` (symmetric, CUE inputs): y = g(Σ_k β*_k q_k(X)) with the normalised
  power sums q_k = Re(p_k)/√(min(k, N)/2), p_k = Σ_j e^{ikθ_j}; under CUE
  E[q_j q_k] = δ_{jk} (Diaconis–Shahshahani), so ⟨β*, q⟩ has unit variance for |β*| = 1.

The special functions they use (Hermite functions, power sums, link functions) are shared
with the models of the family.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

from zoo.sets.targets import register_target

__all__ = [
    "LINKS",
    "calogero",
    "calogero_log",
    "gegenbauer",
    "hermite_functions",
    "link_function",
    "normalized_power_sums",
    "pairwise_energy",
    "sym_single_index",
]


def _pair_mask(n: int, device: torch.device) -> Tensor:
    """Boolean (N, N) mask of the pairs i < j."""
    return torch.ones(n, n, dtype=torch.bool, device=device).triu(1)


def gegenbauer(t: Tensor, degree: int, dim: int) -> Tensor:
    """The Legendre polynomial of ``degree`` in dimension D = ``dim`` (Gegenbauer C_k^{(D−2)/2}
    normalised to P_k(1) = 1; D = 2: Chebyshev T_k, D = 3: Legendre): the zonal spherical
    harmonic, P_k(⟨x, y⟩) ∝ Σ_m Y_km(x) Y_km(y) over the degree-k harmonics on S^{D−1}.
    Recurrence P_{k+1} = ((2k + D − 2) t P_k − k P_{k−1}) / (k + D − 2). t: (...) → (...)."""
    if dim < 2:
        raise ValueError(f"gegenbauer polynomials need dim >= 2, got {dim}")
    prev, cur = torch.ones_like(t), t
    if degree == 0:
        return prev
    for k in range(1, degree):
        prev, cur = cur, ((2 * k + dim - 2) * t * cur - k * prev) / (k + dim - 2)
    return cur


@register_target("pairwise_energy", symmetry="symmetric")
def pairwise_energy(
    x: Tensor,
    u: Literal["exp", "power", "gegenbauer"] = "exp",
    beta: float = 2.0,
    degree: int = 4,
) -> Tensor:
    """E(X) = Σ_{i<j} u(⟨x_i, x_j⟩), u(t) = exp(β t), t^degree or the degree-``degree``
    Legendre polynomial of dimension D (:func:`gegenbauer`: on the sphere E then has only
    degree-k harmonic content, E = ½(Σ_m c |Σ_i Y_km(x_i)|² − N)); x: (B, N, D) → (B,)."""
    gram = x @ x.transpose(-1, -2)  # (B, N, N)
    if u == "exp":
        v = torch.exp(beta * gram)
    elif u == "power":
        v = gram**degree
    elif u == "gegenbauer":
        v = gegenbauer(gram, degree, x.shape[-1])
    else:
        raise ValueError(f"pairwise_energy: u={u!r} is not 'exp', 'power' or 'gegenbauer'")
    return (v * _pair_mask(x.shape[1], x.device)).sum(dim=(-1, -2))


def calogero_log(x: Tensor, lam: float = 1.0) -> tuple[Tensor, Tensor]:
    """(sign, log|Ψ_λ|) of the Calogero–Sutherland-type ground state, x: (B, N, 1) → 2×(B,).

    log|Ψ_λ| = λ Σ_{i<j} log|x_i − x_j| − Σ_i x_i²/2 and sign = Π_{i<j} sign(x_i − x_j):
    finite for any N (no overflow), −inf where two particles coincide.
    """
    if x.shape[-1] != 1:
        raise ValueError(f"calogero targets are 1-D (D = 1), got D = {x.shape[-1]}")
    if lam <= 0:
        raise ValueError(f"calogero: lam must be > 0, got {lam}")
    p = x[..., 0]  # (B, N)
    diff = p.unsqueeze(-1) - p.unsqueeze(-2)  # (B, N, N): x_i − x_j
    mask = _pair_mask(p.shape[-1], p.device)
    d = diff[:, mask]  # (B, N(N−1)/2)
    logabs = lam * torch.log(d.abs()).sum(-1) - 0.5 * (p**2).sum(-1)
    sign = torch.sign(d).prod(-1)
    return sign, logabs


@register_target("calogero", symmetry="antisymmetric")
def calogero(x: Tensor, lam: float = 1.0) -> Tensor:
    """Ψ_λ(x) = Π_{i<j}(x_i − x_j)|x_i − x_j|^{λ−1} e^{−Σ x_i²/2}; x: (B, N, 1) → (B,)."""
    sign, logabs = calogero_log(x, lam)
    return sign * torch.exp(logabs)


def hermite_functions(x: Tensor, m: int, envelope: bool = True) -> Tensor:
    """The first ``m`` normalised Hermite functions ψ_k(x) = (2^k k! √π)^{−1/2} H_k(x) e^{−x²/2}.

    Stable three-term recurrence ψ_{k+1} = √(2/(k+1)) x ψ_k − √(k/(k+1)) ψ_{k−1},
    ψ_0 = π^{−1/4} e^{−x²/2}. ``envelope=False`` drops the factor e^{−x²/2} (the polynomial
    parts, for log-domain use). x: (...) → (..., m).
    """
    out = [math.pi**-0.25 * (torch.exp(-0.5 * x**2) if envelope else torch.ones_like(x))]
    if m > 1:
        out.append(math.sqrt(2.0) * x * out[0])
    for k in range(1, m - 1):
        out.append(math.sqrt(2.0 / (k + 1)) * x * out[k] - math.sqrt(k / (k + 1)) * out[k - 1])
    return torch.stack(out[:m], dim=-1)


def normalized_power_sums(x: Tensor, n_features: int) -> Tensor:
    """q_k(X) = Re(Σ_j e^{ikθ_j}) / √(min(k, N)/2), k = 1..K; orthonormal under CUE.

    x: (B, N, 1) angles θ or (B, N, 2) points (cos θ, sin θ) → (B, K).
    """
    if x.shape[-1] == 1:
        theta = x[..., 0]
    elif x.shape[-1] == 2:
        theta = torch.atan2(x[..., 1], x[..., 0])
    else:
        raise ValueError(f"power sums need angles (D=1) or (cos, sin) (D=2), got D={x.shape[-1]}")
    k = torch.arange(1, n_features + 1, device=x.device, dtype=x.dtype)
    re = torch.cos(theta.unsqueeze(-1) * k).sum(dim=-2)  # (B, K)
    return re / torch.sqrt(torch.clamp(k, max=x.shape[1]) / 2)


LINKS = ("he1", "he2", "he3", "he4", "tanh", "relu")


def link_function(name: str) -> Callable[[Tensor], Tensor]:
    """The link g: probabilists' Hermite He_k (information exponent k), tanh or relu."""
    links: dict[str, Callable[[Tensor], Tensor]] = {
        "he1": lambda z: z,
        "he2": lambda z: (z**2 - 1) / math.sqrt(2),
        "he3": lambda z: (z**3 - 3 * z) / math.sqrt(6),
        "he4": lambda z: (z**4 - 6 * z**2 + 3) / math.sqrt(24),
        "tanh": torch.tanh,
        "relu": torch.relu,
    }
    if name not in links:
        raise ValueError(f"unknown link {name!r}; valid links: {list(links)}")
    return links[name]


@register_target("sym_single_index", symmetry="symmetric")
def sym_single_index(x: Tensor, beta: list[float] | None = None, link: str = "he3") -> Tensor:
    """y = g(⟨β*, q(X)⟩), q the normalised power sums (β* is normalised); x: (B, N, 1|2) → (B,)."""
    if not beta:
        raise ValueError("sym_single_index needs target_params.beta, the planted direction β*")
    b = torch.as_tensor(beta, dtype=x.dtype, device=x.device)
    if not torch.isfinite(b).all() or b.norm() == 0:
        raise ValueError(f"sym_single_index: beta must be finite and non-zero, got {beta}")
    q = normalized_power_sums(x, len(beta))
    return link_function(link)(q @ (b / b.norm()))
