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
from collections.abc import Callable, Mapping
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.core.evaluation import Statistic, mean
from zoo.hierarchical import bp
from zoo.hierarchical.data import Grammar

__all__ = [
    "bp_denoiser",
    "kl_divergence",
    "kl_estimate",
    "sample",
    "sample_columns",
    "sample_quality",
    "sample_statistics",
    "sigma_schedule",
]

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
    """Plug-in ``KL(p ‖ q) = Σ p log(p / q)`` of two distributions (S,) (``0 log 0 = 0``)."""
    p, q = p.double(), q.double()
    mask = p > 0
    return float((p[mask] * (p[mask] / q[mask]).log()).sum())


def kl_estimate(w: Tensor, f: Tensor, q: Tensor, keep: Tensor | None = None) -> Tensor:
    """Bias-corrected estimates ``(R,)`` of ``KL(p ‖ q)`` from per-example distributions.

    ``p̂ = Σ_i w_i f_i`` (over the ``keep`` examples, renormalised) is the mean of ``f`` under
    each of the R weightings; the plug-in ``KL(p̂ ‖ q)`` overestimates ``KL(p ‖ q)`` by
    ``½ Σ_s Var(p̂_s) / p_s`` to first order (``(K − 1)/2n`` for n categorical draws on K
    symbols), which is subtracted with ``Var(p̂_s)`` estimated from the spread of ``f_s``
    over the kept examples: the Miller–Madow correction, extended to examples that each
    contribute a histogram of correlated draws (the leaves of one sequence). The estimate can
    be slightly negative when ``p = q``.

    Args:
        w: (R, n) example weights, rows summing to 1 (see :mod:`zoo.core.evaluation`).
        f: (n, S) a distribution over S symbols per example (a one-hot draw, a histogram).
        q: (S,) the reference distribution.
        keep: (n,) 0/1, the examples that count (all when ``None``).

    Returns:
        (R,) float64; NaN where a weighting keeps no example.
    """
    n = w.shape[1]
    w = w if keep is None else w * keep.to(w.dtype)
    tot = w.sum(1, keepdim=True)
    wn = w / tot
    f = f.to(w.dtype)
    p = wn @ f
    count = (n * tot - 1).clamp_min(1)  # kept examples − 1: the unbiased variance's divisor
    var = (wn @ f.pow(2) - p.pow(2)).clamp_min(0) / count
    pos = p > 0
    safe = torch.where(pos, p, torch.ones_like(p))
    q = q.to(w)
    plugin = torch.where(pos, p * (safe / q).log(), torch.zeros_like(p)).sum(1)
    bias = torch.where(pos, var / safe, torch.zeros_like(p)).sum(1) / 2
    return torch.where(tot[:, 0] > 0, plugin - bias, math.nan)


def sample_columns(grammar: Grammar, leaves: Tensor) -> dict[str, Tensor]:
    """Per-sample columns of generated sequences leaves (B, N) long, for the bootstrap.

    Returns:
        ``grammatical`` (B,): 1 where ``p(x) > 0``; ``root`` (B,): the BP root
        ``argmax p(root | x)`` of a grammatical sample, −1 otherwise; ``freq_<s>`` (B,) for
        every symbol ``s``: the fraction of the sample's leaves equal to ``s``.
    """
    S = grammar.n_symbols
    ok = bp.is_grammatical(grammar, leaves)
    root = torch.full((len(leaves),), -1, dtype=torch.long, device=leaves.device)
    if ok.any():
        root[ok] = bp.root_posterior(grammar, leaves[ok]).argmax(-1)
    freq = F.one_hot(leaves, S).double().mean(1)  # (B, S)
    return {
        "grammatical": ok.double(),
        "root": root.double(),
        **{f"freq_{s}": freq[:, s] for s in range(S)},
    }


def sample_statistics(grammar: Grammar) -> dict[str, Statistic]:
    """The sample-quality metrics as statistics of :func:`sample_columns`.

    ``grammatical``: the fraction with ``p(x) > 0``; ``kl_symbols``: KL of the
    position-averaged symbol frequencies to the true leaf marginals
    (:func:`zoo.hierarchical.bp.leaf_marginals`); ``kl_root``: KL of the BP roots of the
    grammatical samples to the root prior. Both KLs are bias-corrected (:func:`kl_estimate`).
    """
    S = grammar.n_symbols
    leaf_p = bp.leaf_marginals(grammar).mean(0)
    root_p = grammar.root_prior.double()

    def kl_symbols(w: Tensor, c: Mapping[str, Tensor]) -> Tensor:
        f = torch.stack([c[f"freq_{s}"] for s in range(S)], 1)
        return kl_estimate(w, f, leaf_p)

    def kl_root(w: Tensor, c: Mapping[str, Tensor]) -> Tensor:
        onehot = F.one_hot(c["root"].clamp_min(0).long(), S)
        return kl_estimate(w, onehot, root_p, keep=c["grammatical"])

    return {"grammatical": mean("grammatical"), "kl_symbols": kl_symbols, "kl_root": kl_root}


def sample_quality(grammar: Grammar, leaves: Tensor) -> dict[str, float]:
    """The :func:`sample_statistics` of generated sequences leaves (B, N) long, as floats
    (``kl_root`` is ``nan`` when no sample is grammatical)."""
    columns = sample_columns(grammar, leaves)
    n = len(leaves)
    w = torch.full((1, n), 1.0 / n, dtype=torch.float64, device=leaves.device)
    return {k: float(f(w, columns)[0]) for k, f in sample_statistics(grammar).items()}
