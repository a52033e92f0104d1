"""Input samplers of the ``sets`` datamodule: ``fn(n, n_set, dim, generator, device, **params)``
returns x: (n, N, D), drawn vectorised on ``device`` from ``generator`` only.

- ``gaussian``: x_i ~ N(0, std² I_D) i.i.d.
- ``sphere``:   x_i uniform on S^{D−1} (normalised Gaussians).
- ``line``:     D = 1, x_i ~ N(0, std²) with std = 1/√2 by default: the one-particle density
                |h_0(x)|² ∝ e^{−x²} of the harmonic trap, the natural scale for fermions.
- ``cue``:      the N eigenvalues e^{iθ_j} of a Haar-random unitary U(N) (circular unitary
                ensemble, joint density ∝ Π_{j<k}|e^{iθ_j} − e^{iθ_k}|²); D = 1 returns the
                angles θ ∈ (−π, π], D = 2 the points (cos θ, sin θ).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from zoo.core.registry import Registry

__all__ = ["SAMPLERS", "list_samplers", "register_sampler", "sample_sets"]

SamplerFn = Callable[..., Tensor]
SAMPLERS: Registry[SamplerFn] = Registry("sampler")


def register_sampler(name: str) -> Callable[[SamplerFn], SamplerFn]:
    """Register ``fn(n, n_set, dim, generator, device, **params) -> (n, N, D)`` as ``name``."""
    return SAMPLERS.register(name)


def list_samplers() -> list[str]:
    """Sorted registered sampler names."""
    return SAMPLERS.names()


def sample_sets(
    sampler: str,
    n: int,
    n_set: int,
    dim: int,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
    **params: Any,
) -> Tensor:
    """Draw ``n`` sets with ``sampler``; returns x: (n, N, D) float32 on ``device``."""
    x = SAMPLERS.get(sampler)(n, n_set, dim, generator, torch.device(device), **params)
    return x.to(torch.float32)


@register_sampler("gaussian")
def _gaussian(
    n: int, n_set: int, dim: int, generator: torch.Generator, device: torch.device, std: float = 1.0
) -> Tensor:
    """x_i ~ N(0, std² I_D)."""
    return std * torch.randn(n, n_set, dim, generator=generator, device=device)


@register_sampler("sphere")
def _sphere(
    n: int, n_set: int, dim: int, generator: torch.Generator, device: torch.device
) -> Tensor:
    """x_i uniform on the unit sphere S^{D−1}."""
    g = torch.randn(n, n_set, dim, generator=generator, device=device)
    return g / g.norm(dim=-1, keepdim=True).clamp_min(1e-30)


@register_sampler("line")
def _line(
    n: int,
    n_set: int,
    dim: int,
    generator: torch.Generator,
    device: torch.device,
    std: float = 1 / math.sqrt(2),
) -> Tensor:
    """D = 1 particles, x_i ~ N(0, std²) (std = 1/√2: the harmonic-trap ground-state density)."""
    if dim != 1:
        raise ValueError(f"sampler 'line' draws 1-D particles: dim must be 1, got {dim}")
    return std * torch.randn(n, n_set, 1, generator=generator, device=device)


@register_sampler("cue")
def _cue(n: int, n_set: int, dim: int, generator: torch.Generator, device: torch.device) -> Tensor:
    """Eigen-angles of Haar unitaries: QR of a complex Ginibre matrix with the phases of
    diag(R) divided out (Mezzadri 2007), then the eigenvalues; D = 1 angles, D = 2 (cos, sin).
    """
    if dim not in (1, 2):
        raise ValueError(f"sampler 'cue' returns angles (dim=1) or (cos, sin) (dim=2), got {dim}")
    z = torch.randn(n, n_set, n_set, 2, generator=generator, device=device, dtype=torch.float64)
    q, r = torch.linalg.qr(torch.complex(z[..., 0], z[..., 1]))
    d = torch.diagonal(r, dim1=-2, dim2=-1)
    q = q * (d / d.abs()).unsqueeze(-2)
    theta = torch.angle(torch.linalg.eigvals(q))  # (n, N)
    if dim == 1:
        return theta.unsqueeze(-1)
    return torch.stack([theta.cos(), theta.sin()], dim=-1)
