"""Diffusion sampling of GHM sequences with a σ-conditioned denoiser, and its exact checks.

Variance-exploding diffusion on the one-hot embeddings: ``y_σ = E x + σ g``. Tweedie's
formula makes the score a function of the denoiser, ``∇ log p_σ(y) = (D(y, σ) − y) / σ²`` with
``D(y, σ) = E[E x | y_σ = y]``, which a σ-conditioned ``unet_bp`` learns and exact BP
computes (:func:`zoo.hierarchical.bp.bayes_denoiser`). On a geometric grid
``σ_0 = σ_max > … > σ_{K−1} = σ_min`` a step from ``σ = σ_i`` to ``σ' = σ_{i+1}`` is

- DDPM (ancestral): ``y ← D + (σ'²/σ²)(y − D) + σ' √(1 − σ'²/σ²) z``,
- DDIM (deterministic): ``y ← D + (σ'/σ)(y − D)``,

starting from ``y = 1/S + σ_max g`` and rounding ``argmax_s D(y, σ_min)`` at the end. Sample
quality is exact for sparse grammars: a sequence is grammatical iff ``p(x) > 0`` (BP), and
per level (:func:`zoo.hierarchical.bp.level_grammatical`); ``copy`` is the fraction of samples
that are training sequences (memorisation).

Discrete (masking) diffusion, :func:`masked_sample`: the forward process masks leaves, the
reverse one unmasks ``N / steps`` of them per step, in a uniformly random order, each drawn from
the denoiser's marginal ``p(x_i | visible leaves)`` (Sahoo et al., "Simple and effective masked
diffusion language models", 2024; Shi et al., "Simplified and generalized masked diffusion",
2024). Exact BP (:func:`bp_mask_denoiser`) gives the exact marginals; with ``steps = N`` (one
leaf per step) the sampler is then exact ancestral sampling of ``p(x)``, and fewer steps draw
several leaves of a step independently, which the per-level grammaticality measures.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.core.evaluation import Statistic, proportion
from zoo.hierarchical import bp
from zoo.hierarchical.data import Grammar, contains

__all__ = [
    "bp_denoiser",
    "bp_mask_denoiser",
    "kl_divergence",
    "kl_estimate",
    "masked_sample",
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


MaskDenoiser = Callable[[Tensor], Tensor]


def bp_mask_denoiser(grammar: Grammar) -> MaskDenoiser:
    """The exact denoiser of masked leaves: x (B, N) long, −1 = masked → ``p(x_i = s |
    visible)`` (B, N, S) (BP with hard evidence on the visible leaves, none on the masked).
    Where the visible leaves are impossible (``p = 0``: the conditional is undefined) it
    returns the prior marginals ``p(x_i = s)``."""
    prior = bp.leaf_marginals(grammar)  # (N, S)

    def denoise(x: Tensor) -> Tensor:
        ev = bp.leaf_log_evidence(x.clamp_min(0), grammar.n_symbols, torch.float64)
        post = bp.leaf_posterior(grammar, ev.masked_fill((x < 0)[..., None], 0.0))
        dead = post.sum(-1, keepdim=True) == 0
        return torch.where(dead, prior.to(post), post)

    return denoise


@torch.no_grad()
def masked_sample(
    denoiser: MaskDenoiser,
    *,
    n: int,
    n_leaves: int,
    steps: int,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Draw ``n`` sequences by reverse masking diffusion: → (n, N) long.

    Every sample starts fully masked and gets a uniformly random order of its leaves; step
    ``k`` of ``steps`` unmasks the leaves of rank ``⌊kN/steps⌋ … ⌊(k+1)N/steps⌋ − 1``, each
    drawn independently from the denoiser's marginals given the leaves visible so far.

    Args:
        denoiser: ``x (B, N) long (−1 = masked) → (B, N, S)`` marginals.
        steps: 1 … N (``N``: one leaf per step).
        generator: the only randomness.
    """
    if not 1 <= steps <= n_leaves:
        raise ValueError(f"need 1 <= steps <= n_leaves = {n_leaves}, got {steps}")
    rank = torch.rand(n, n_leaves, generator=generator, device=device).argsort(-1).argsort(-1)
    x = torch.full((n, n_leaves), -1, dtype=torch.long, device=device)
    for k in range(steps):
        now = (rank >= k * n_leaves // steps) & (rank < (k + 1) * n_leaves // steps)
        p = denoiser(x).double()  # (n, N, S)
        cdf = p.cumsum(-1)
        u = torch.rand(n, n_leaves, 1, generator=generator, device=device, dtype=torch.float64)
        draw = (cdf < u * cdf[..., -1:]).sum(-1).clamp_max(p.shape[-1] - 1)
        x = torch.where(now, draw, x)
    return x


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


def sample_columns(
    grammar: Grammar, leaves: Tensor, train: Tensor | None = None
) -> dict[str, Tensor]:
    """Per-sample columns of generated sequences leaves (B, N) long, for the bootstrap.

    Returns:
        ``grammatical`` (B,): 1 where ``p(x) > 0``; ``grammatical_l<ℓ>`` for levels
        ``ℓ = 1 … L−1``: 1 where every node of level ℓ can generate its block of leaves
        (:func:`zoo.hierarchical.bp.level_grammatical`); ``root`` (B,): the BP root
        ``argmax p(root | x)`` of a grammatical sample, −1 otherwise; ``freq_<s>`` (B,) for
        every symbol ``s``: the fraction of the sample's leaves equal to ``s``; with
        ``train`` (n, N) long, ``copy`` (B,): 1 where the sample is a training sequence.
    """
    S = grammar.n_symbols
    levels = bp.level_grammatical(grammar, leaves)
    ok = levels[:, 0]
    root = torch.full((len(leaves),), -1, dtype=torch.long, device=leaves.device)
    if ok.any():
        root[ok] = bp.root_posterior(grammar, leaves[ok]).argmax(-1)
    freq = F.one_hot(leaves, S).double().mean(1)  # (B, S)
    out = {
        "grammatical": ok.double(),
        **{f"grammatical_l{lv}": levels[:, lv].double() for lv in range(1, grammar.depth)},
        "root": root.double(),
        **{f"freq_{s}": freq[:, s] for s in range(S)},
    }
    if train is not None:
        out["copy"] = contains(train.to(leaves.device), leaves).double()
    return out


def sample_statistics(grammar: Grammar, copies: bool = False) -> dict[str, Statistic]:
    """The sample-quality metrics as statistics of :func:`sample_columns`.

    ``grammatical`` (and ``grammatical_l<ℓ>`` per level): the fraction with ``p(x) > 0``;
    ``kl_symbols``: KL of the position-averaged symbol frequencies to the true leaf marginals
    (:func:`zoo.hierarchical.bp.leaf_marginals`); ``kl_root``: KL of the BP roots of the
    grammatical samples to the root prior. Both KLs are bias-corrected (:func:`kl_estimate`).
    ``copies``: also ``copy``, the fraction of samples that are training sequences.
    """
    S, L = grammar.n_symbols, grammar.depth
    leaf_p = bp.leaf_marginals(grammar).mean(0)
    root_p = grammar.root_prior.double()

    def kl_symbols(w: Tensor, c: Mapping[str, Tensor]) -> Tensor:
        f = torch.stack([c[f"freq_{s}"] for s in range(S)], 1)
        return kl_estimate(w, f, leaf_p)

    def kl_root(w: Tensor, c: Mapping[str, Tensor]) -> Tensor:
        onehot = F.one_hot(c["root"].clamp_min(0).long(), S)
        return kl_estimate(w, onehot, root_p, keep=c["grammatical"])

    levels = {f"grammatical_l{lv}": proportion(f"grammatical_l{lv}") for lv in range(1, L)}
    out = {"grammatical": proportion("grammatical"), **levels, "kl_symbols": kl_symbols}
    out["kl_root"] = kl_root
    if copies:
        out["copy"] = proportion("copy")
    return out


def sample_quality(
    grammar: Grammar, leaves: Tensor, train: Tensor | None = None
) -> dict[str, float]:
    """The :func:`sample_statistics` of generated sequences leaves (B, N) long, as floats
    (``kl_root`` is ``nan`` when no sample is grammatical); ``copy`` with ``train``."""
    columns = sample_columns(grammar, leaves, train)
    n = len(leaves)
    w = torch.full((1, n), 1.0 / n, dtype=torch.float64, device=leaves.device)
    stats = sample_statistics(grammar, copies=train is not None)
    return {k: float(f(w, columns)[0]) for k, f in stats.items()}
