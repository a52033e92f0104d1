"""Closed-form ridge regression on fixed features, the exact reference of random-feature models.

For features Φ ∈ R^{n×P}, targets Y ∈ R^{n×k} and λ ≥ 0 the training objective

    L(V) = (1/n) ‖Φ V − Y‖_F² + λ ‖V‖_F²

is minimised by V* = (ΦᵀΦ/n + λI)^{-1} ΦᵀY/n = Φᵀ(ΦΦᵀ + nλI)^{-1} Y (push-through identity).
:func:`ridge_solve` picks the primal (P ≤ n) or dual (P > n) form, whichever is the smaller
linear system, and solves it in float64 with a Cholesky factorisation (minimum-norm least
squares when λ = 0). :func:`ridge_path` gives the minimisers for many λ at the cost of one
eigendecomposition of the same (smaller) Gram matrix.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["ridge_objective", "ridge_path", "ridge_solve"]


def _as_2d(y: Tensor) -> Tensor:
    return y[:, None] if y.dim() == 1 else y


def _design(phi: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """``(Φ, Y)`` in float64, Y as ``(n, k)``; ``ValueError`` unless phi: (n, P), y: (n, ...)."""
    if phi.dim() != 2 or phi.shape[0] != y.shape[0]:
        raise ValueError(f"phi: (n, P) and y: (n, ...) must share n, got {phi.shape}, {y.shape}")
    return phi.double(), _as_2d(y).double()


def ridge_solve(phi: Tensor, y: Tensor, lam: float) -> Tensor:
    """Minimiser V* of (1/n)‖ΦV − Y‖² + λ‖V‖². phi: (n, P), y: (n,) or (n, k) → (P, k).

    Raises:
        ValueError: on mismatched shapes or a negative ``lam``.
    """
    if lam < 0:
        raise ValueError(f"ridge penalty lam must be >= 0, got {lam}")
    f, t = _design(phi, y)
    n, p = f.shape
    if lam == 0:
        return torch.linalg.lstsq(f, t, driver="gelsd").solution
    if p <= n:
        a = f.T @ f / n
        a.diagonal().add_(lam)
        chol = torch.linalg.cholesky(a)
        return torch.cholesky_solve(f.T @ t / n, chol)
    g = f @ f.T / n
    g.diagonal().add_(lam)
    chol = torch.linalg.cholesky(g)
    return f.T @ torch.cholesky_solve(t / n, chol)


def ridge_path(phi: Tensor, y: Tensor, lams: list[float]) -> list[Tensor]:
    """Minimisers V*(λ) of (1/n)‖ΦV − Y‖² + λ‖V‖² for every λ in ``lams`` (all > 0).

    One float64 eigendecomposition of ΦᵀΦ/n = U diag(s) Uᵀ (or, for P > n, of ΦΦᵀ/n) gives
    V*(λ) = U diag(1/(s + λ)) UᵀΦᵀY/n (dual: Φᵀ W diag(1/(s + λ)) WᵀY/n) for each λ.
    phi: (n, P), y: (n,) or (n, k) → a list of (P, k), in the order of ``lams``.

    Raises:
        ValueError: on mismatched shapes or a penalty that is not > 0.
    """
    if any(lam <= 0 for lam in lams):
        raise ValueError(f"ridge_path needs penalties > 0, got {lams}")
    f, t = _design(phi, y)
    n, p = f.shape
    if p <= n:
        s, u = torch.linalg.eigh(f.T @ f / n)
        c = u.T @ (f.T @ t / n)  # (P, k)
        return [u @ (c / (s + lam)[:, None]) for lam in lams]
    s, w = torch.linalg.eigh(f @ f.T / n)
    c = w.T @ t / n  # (n, k)
    fw = f.T @ w  # (P, n)
    return [fw @ (c / (s + lam)[:, None]) for lam in lams]


def ridge_objective(phi: Tensor, y: Tensor, v: Tensor, lam: float) -> float:
    """(1/n)‖ΦV − Y‖_F² + λ‖V‖_F² in float64. phi: (n, P), y: (n,)/(n, k), v: (P, k)."""
    r = phi.double() @ v.double() - _as_2d(y).double()
    return float(r.pow(2).sum() / phi.shape[0] + lam * v.double().pow(2).sum())
