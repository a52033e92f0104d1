"""Diffusion sampling of GHM sequences with a σ-conditioned denoiser, and its exact checks.

Variance-exploding diffusion on the one-hot embeddings: ``y_σ = E x + σ g``. Tweedie's
formula makes the score a function of the denoiser, ``∇ log p_σ(y) = (D(y, σ) − y) / σ²`` with
``D(y, σ) = E[E x | y_σ = y]``, which a σ-conditioned ``unet_bp`` learns and exact BP
computes (:func:`zoo.hierarchical.bp.bayes_denoiser`). On a geometric grid
``σ_0 = σ_max > … > σ_{K−1} = σ_min`` a step from ``σ = σ_i`` to ``σ' = σ_{i+1}`` is

- DDPM (ancestral): ``y ← D + (σ'²/σ²)(y − D) + σ' √(1 − σ'²/σ²) z``,
- DDIM (deterministic): ``y ← D + (σ'/σ)(y − D)``,

starting from ``y = 1/S + σ_max g`` and rounding ``argmax_s D(y, σ_min)`` at the end. Sample
quality is exact for sparse grammars: a sequence is grammatical iff ``p(x) > 0`` (BP).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

from zoo.hierarchical import bp
from zoo.hierarchical.data import Grammar

__all__ = ["bp_denoiser", "kl_divergence", "sample", "sample_quality", "sigma_schedule"]

Denoiser = Callable[[Tensor, Tensor], Tensor]


def sigma_schedule(sigma_max: float, sigma_min: float, steps: int) -> list[float]:
    """``steps`` geometrically spaced noise levels from ``sigma_max`` down to ``sigma_min``."""
    if not sigma_max > sigma_min > 0:
        raise ValueError(f"need sigma_max > sigma_min > 0, got {sigma_max}, {sigma_min}")
    if steps == 1:
        return [sigma_min]
    r = math.log(sigma_min / sigma_max) / (steps - 1)
    return [sigma_max * math.exp(r * i) for i in range(steps)]


def bp_denoiser(grammar: Grammar) -> Denoiser:
    """The exact (Bayes) denoiser ``(y (B, N, S), σ (B,)) → E[E x | y]`` as a sampler input."""
    return lambda y, sigma: bp.bayes_denoiser(grammar, y, sigma)


@torch.no_grad()
def sample(
    denoiser: Denoiser | torch.nn.Module,
    *,
    n: int,
    n_leaves: int,
    n_symbols: int,
    sigma_max: float = 10.0,
    sigma_min: float = 0.05,
    steps: int = 100,
    sampler: Literal["ddpm", "ddim"] = "ddpm",
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Draw ``n`` leaf sequences by reverse diffusion: → (n, N) long.

    Args:
        denoiser: ``(y (B, N, S), σ (B,)) → D (B, N, S)``; a module is put in eval mode.
        n_leaves, n_symbols: ``N``, ``S``. sigma_max, sigma_min, steps: the σ grid.
        sampler: ``"ddpm"`` (stochastic) or ``"ddim"`` (deterministic after the first draw).
        generator: the only randomness; its device is used when ``device`` is None.
    """
    if isinstance(denoiser, torch.nn.Module):
        was_training = denoiser.training
        denoiser.eval()
        if device is None:
            device = next(denoiser.parameters()).device
    if device is None:
        device = generator.device if generator is not None else "cpu"
    sigmas = sigma_schedule(sigma_max, sigma_min, steps)
    y = 1.0 / n_symbols + sigma_max * torch.randn(
        n, n_leaves, n_symbols, generator=generator, device=device
    )
    for i, s in enumerate(sigmas):
        d = denoiser(y, torch.full((n,), s, device=device))
        if i + 1 == len(sigmas):
            y = d
            break
        s2 = sigmas[i + 1]
        if sampler == "ddim":
            y = d + (s2 / s) * (y - d)
        else:
            z = torch.randn(y.shape, generator=generator, device=device)
            y = d + (s2 / s) ** 2 * (y - d) + s2 * math.sqrt(1 - (s2 / s) ** 2) * z
    if isinstance(denoiser, torch.nn.Module) and was_training:
        denoiser.train()
    return y.argmax(-1)


def kl_divergence(p: Tensor, q: Tensor) -> float:
    """``KL(p ‖ q) = Σ p log(p / q)`` of two distributions (S,) (``0 log 0 = 0``)."""
    p, q = p.double(), q.double()
    mask = p > 0
    return float((p[mask] * (p[mask] / q[mask]).log()).sum())


def sample_quality(grammar: Grammar, leaves: Tensor) -> dict[str, float]:
    """Exact quality of generated sequences leaves (B, N) long.

    Returns:
        ``grammatical``: fraction with ``p(x) > 0``;
        ``kl_symbols``: KL of the position-averaged symbol frequencies to the true leaf
        marginals (:func:`zoo.hierarchical.bp.leaf_marginals`);
        ``kl_root``: KL of the BP root (argmax ``p(root | x)``) of the grammatical samples to
        the root prior (``nan`` when none is grammatical).
    """
    S = grammar.n_symbols
    ok = bp.is_grammatical(grammar, leaves)
    emp = torch.bincount(leaves.reshape(-1), minlength=S).double() / leaves.numel()
    true = bp.leaf_marginals(grammar).mean(0).to(emp.device)
    out = {"grammatical": ok.double().mean().item(), "kl_symbols": kl_divergence(emp, true)}
    if ok.any():
        roots = bp.root_posterior(grammar, leaves[ok]).argmax(-1)
        emp_root = torch.bincount(roots, minlength=S).double() / len(roots)
        out["kl_root"] = kl_divergence(emp_root, grammar.root_prior.to(emp_root.device))
    else:
        out["kl_root"] = float("nan")
    return out
