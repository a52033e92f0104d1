"""Figures of the U-Net BP family (``python recipes/reproduce.py fig=<name>``).

- ``unet_bp_mse``: denoising MSE of the σ-conditioned U-Net checkpoint and the Bayes MSE of
  exact BP across σ, on fresh data.
- ``unet_bp_samples``: test MSE / Bayes MSE vs the number of clean training sequences, U-Net
  vs the same encoder-decoder without long skips (widened to at least the same size).
- ``convnet_bp_acc``: root accuracy of ``convnet_bp`` vs the number of training sequences,
  with the BP (Bayes-optimal) accuracy.
- ``rhm_sample_complexity``: test error of ``convnet_bp`` vs the number of training sequences
  for several RHMs (S, n_rules, L), against the sample complexity ``P* = n_c · n_rules^L`` of
  Cagnetta et al. (the curves collapse in ``n / P*``).

The sweeps train with :func:`zoo.core.figures.quick_fit` for a fixed number of Adam steps
(per-step cosine schedule; the ``ghm`` datamodule redraws the denoising noise every epoch)
and score the ``ghm`` test split, where the models compare themselves to exact BP.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from zoo.core.checkpoint import load, read_config, resolve
from zoo.core.figures import (
    new_figure,
    plot_seeds,
    quick_fit,
    quick_test,
    register_figure,
    seed_everything,
    seeds_note,
)
from zoo.core.registry import create, create_datamodule
from zoo.hierarchical import bp
from zoo.hierarchical.data import Grammar, build_grammar, rhm_grammar, sample_part

log = logging.getLogger(__name__)

__all__ = ["convnet_bp_acc", "rhm_sample_complexity", "unet_bp_mse", "unet_bp_samples"]


def _n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _budget(steps: int, batch_size: int, lr: float) -> str:
    """The training budget of a sweep point, for a title."""
    return f"{steps} Adam steps per point (batch min({batch_size}, n), lr {lr:g}, cosine)"


def _fit_and_test(
    name: str,
    *,
    n_train: int,
    steps: int,
    batch_size: int,
    lr: float,
    n_test: int,
    seed: int,
    data: dict[str, Any] | None = None,
    **hparams: Any,
) -> dict[str, float]:
    """Test metrics of model ``name`` after ``steps`` Adam steps (cosine) on ``n_train``
    sequences of its ``ghm`` data drawn with ``seed``."""
    seed_everything(seed)
    model = create(name, lr=lr, optimizer="adam", scheduler="cosine", **hparams)
    dm = create_datamodule(
        model,
        n_train=n_train,
        n_val=1,
        n_test=n_test,
        batch_size=min(batch_size, n_train),
        seed=seed,
        **(data or {}),
    )
    quick_fit(model, dm, max_steps=steps, seed=seed)
    return {**quick_test(model, dm), "n_params": _n_params(model)}


@torch.no_grad()
def _test_mse(
    model: torch.nn.Module,
    grammar: Grammar,
    y: torch.Tensor,
    sigma: torch.Tensor,
    leaves: torch.Tensor,
) -> tuple[float, float]:
    """(model MSE, Bayes MSE) per coordinate of denoising ``y`` at noise ``sigma``."""
    clean = F.one_hot(leaves, grammar.n_symbols).float()
    mse = F.mse_loss(model(y, sigma), clean).item()
    return mse, bp.bayes_mse(grammar, y.double(), sigma.double(), leaves).mean().item()


@register_figure("unet_bp_mse")
def unet_bp_mse(
    *,
    checkpoint: str = "unet_bp_sigma",
    fixed_checkpoint: str = "unet_bp",
    sigmas: tuple[float, ...] = (0.1, 0.2, 0.35, 0.5, 0.7, 1.0, 1.4, 2.0, 3.0, 5.0),
    n_test: int = 2048,
    seeds: tuple[int, ...] = (1, 2, 3),
) -> Figure:
    """Model MSE and Bayes MSE vs σ on fresh held-out data (one draw of the test part of the
    sequence space per seed) for a σ-conditioned checkpoint.

    ``fixed_checkpoint`` (a model trained at one σ) is added as a single point when it exists
    and shares the grammar.
    """
    from matplotlib.ticker import FormatStrFormatter, NullFormatter

    model = load(checkpoint)
    cfg = dict(model.zoo_data_config)
    grammar = build_grammar(cfg)
    try:
        fixed = load(fixed_checkpoint)
        if fixed.zoo_data_config.get("grammar_seed") != cfg.get("grammar_seed"):
            fixed = None
    except (FileNotFoundError, ValueError) as e:
        log.info("no fixed-sigma checkpoint: %s", e)
        fixed = None
    mses, bayes, extra = [], [], []
    for seed in seeds:
        g = torch.Generator().manual_seed(seed)
        # held-out sequences: the test part of the sequence space (never training sequences)
        leaves, _ = sample_part(grammar, n_test, 2, float(cfg.get("holdout", 0.1)), g)
        clean = F.one_hot(leaves, grammar.n_symbols).float()
        rows = []
        for s in sigmas:
            y = clean + s * torch.randn(clean.shape, generator=g)
            rows.append(_test_mse(model, grammar, y, torch.full((n_test,), float(s)), leaves))
            log.info("seed=%d sigma=%.3g mse=%.4g bayes=%.4g", seed, s, *rows[-1])
        mses.append([r[0] for r in rows])
        bayes.append([r[1] for r in rows])
        if fixed is not None:
            fs = float(fixed.zoo_data_config["sigma"])
            y = clean + fs * torch.randn(clean.shape, generator=g)
            extra.append(_test_mse(fixed, grammar, y, torch.full((n_test,), fs), leaves))
    mses_t, bayes_t = torch.tensor(mses), torch.tensor(bayes)
    fig, (ax, ax2) = new_figure(1, 2, figsize=(10, 4))
    s_ = list(sigmas)
    plot_seeds(ax, s_, mses_t, label=f"U-Net ({checkpoint})")
    plot_seeds(ax, s_, bayes_t, "--", label="Bayes (exact BP)", color="k")
    # the ratio only where every seed's Bayes error is not ~0 (tiny σ: the leaves are recovered
    # exactly, and the ratio of two near-zero MSEs is noise)
    keep = [i for i, b in enumerate(bayes_t.min(0).values.tolist()) if b > 1e-6]
    ratios = mses_t[:, keep] / bayes_t[:, keep]
    plot_seeds(ax2, [s_[i] for i in keep], ratios, label=checkpoint)
    for i, r in zip(keep, ratios.mean(0).tolist()):
        ax2.annotate(f"{r:.3f}", (s_[i], r), fontsize=7, xytext=(3, 5), textcoords="offset points")
    if extra:
        fs = float(fixed.zoo_data_config["sigma"])
        e = torch.tensor(extra).mean(0).tolist()
        ax.plot(fs, e[0], "r*", ms=12, label=f"{fixed_checkpoint} (trained at σ={fs:g})")
        ax2.plot(fs, e[0] / e[1], "r*", ms=12, label=fixed_checkpoint)
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="noise σ",
        ylabel="MSE per coordinate",
        title=f"denoising GHM leaves ({grammar.describe().split(';')[0]})",
    )
    ax2.axhline(1.0, color="k", lw=0.8)
    ax2.axhline(1.05, color="grey", ls=":", lw=0.8)
    ax2.set(
        xscale="log",
        yscale="log",  # the ratio spans decades where the Bayes MSE is tiny (small σ)
        xlabel="noise σ",
        ylabel="model MSE / Bayes MSE",
        title="ratio to exact BP",
    )
    top = float(ratios.max()) if ratios.numel() else 1.0
    ax2.set_yticks([t for t in (1, 1.5, 2, 3, 5, 10, 20, 50) if t <= 1.2 * top] or [1])
    ax2.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax2.yaxis.set_minor_formatter(NullFormatter())
    fig.suptitle(
        f"{n_test} fresh test sequences per σ and seed ({seeds_note(seeds)}); "
        f"{_trained(checkpoint)}",
        fontsize=10,
    )
    ax.set_ylim(1e-6, 0.3)  # Bayes MSE at σ → 0 is ~0 (below the axis)
    for a in (ax, ax2):
        a.set_xticks([t for t in (0.1, 0.2, 0.5, 1, 2, 5) if min(s_) <= t <= max(s_)])
        a.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        a.xaxis.set_minor_formatter(NullFormatter())
        a.legend(fontsize=8)
    return fig


def _trained(checkpoint: str) -> str:
    """``"unet_bp_sigma: 4096 training sequences, experiment=unet_bp_sigma"``: a checkpoint's
    training data and the recipe experiment (its budget) from its ``config.json``."""
    config = read_config(resolve(checkpoint))
    recipe = [t for t in str(config.get("command", "")).split() if t.startswith("experiment=")]
    text = f"{checkpoint}: {config.get('data', {}).get('n_train', '?')} training sequences"
    return text + "".join(f", {r}" for r in recipe[:1])


def _matched_width(width: int, depth: int, target: int) -> int:
    """The smallest width ≥ ``width`` of ``unet_bp_noskip`` with ≥ ``target`` parameters."""
    for w in range(width, 4 * width):
        if _n_params(create("unet_bp_noskip", depth=depth, width=w)) >= target:
            return w
    return 4 * width - 1


def _n_grammatical(grammar: Grammar) -> int:
    """The number of leaf sequences an RHM generates (every rule used equally often)."""
    return grammar.n_symbols * math.prod(
        int((t.reshape(grammar.n_symbols, -1)[0] > 0).sum()) ** (grammar.branching**lvl)
        for lvl, t in enumerate(grammar.transitions)
    )


@register_figure("unet_bp_samples")
def unet_bp_samples(
    *,
    n_trains: tuple[int, ...] = (16, 64, 256, 1024),
    depth: int = 3,
    width: int = 32,
    sigma: float = 1.0,
    steps: int = 1000,
    batch_size: int = 128,
    lr: float = 3e-3,
    n_test: int = 4096,
    seeds: tuple[int, ...] = (0, 1, 2),
) -> Figure:
    """Test MSE / Bayes MSE vs number of clean training sequences: U-Net vs no-skip CNN."""
    n_unet = _n_params(create("unet_bp", depth=depth, width=width))
    models = {
        "U-Net (long skips)": ("unet_bp", width),
        "CNN, no skips": ("unet_bp_noskip", _matched_width(width, depth, n_unet)),
    }
    common = {"steps": steps, "batch_size": batch_size, "lr": lr, "n_test": n_test}
    ratios: dict[str, list[list[float]]] = {label: [] for label in models}
    sizes: dict[str, int] = {}
    for label, (name, w) in models.items():
        for seed in seeds:
            runs = []
            for n in n_trains:
                m = _fit_and_test(
                    name,
                    n_train=n,
                    seed=seed,
                    depth=depth,
                    width=w,
                    data={"sigma": sigma},
                    **common,
                )
                runs.append(m["test/mse_ratio"])
                sizes[label] = int(m["n_params"])
                log.info("%s seed=%d n=%d ratio=%.4f", label, seed, n, runs[-1])
            ratios[label].append(runs)
    grammar = build_grammar(create("unet_bp", depth=depth).zoo_data_config)
    fig, ax = new_figure(figsize=(6, 4))
    for label, runs in ratios.items():
        plot_seeds(ax, list(n_trains), runs, label=f"{label}, {sizes[label] / 1e3:.0f}k params")
    ax.axhline(1.0, color="k", lw=0.8, label="Bayes (exact BP)")
    ax.set(
        xscale="log",
        xlabel="clean training sequences n",
        ylabel=f"test MSE / Bayes MSE ({n_test} sequences)",
        title=f"σ={sigma:g}, L={depth}: {_n_grammatical(grammar)} grammatical sequences\n"
        f"{_budget(steps, batch_size, lr)}; {seeds_note(seeds)}",
    )
    ax.legend(fontsize=8)
    return fig


@register_figure("convnet_bp_acc")
def convnet_bp_acc(
    *,
    n_trains: tuple[int, ...] = (32, 64, 128, 256, 512, 1024, 2048),
    depth: int = 4,
    width: int = 64,
    steps: int = 600,
    batch_size: int = 128,
    lr: float = 3e-3,
    n_test: int = 4096,
    seeds: tuple[int, ...] = (0, 1, 2),
) -> Figure:
    """Root accuracy of ``convnet_bp`` vs training size, against exact BP's accuracy."""
    common = {"steps": steps, "batch_size": batch_size, "lr": lr, "n_test": n_test}
    accs, bayes = [], []
    for seed in seeds:
        runs = []
        for n in n_trains:
            m = _fit_and_test(
                "convnet_bp", n_train=n, seed=seed, depth=depth, width=width, **common
            )
            runs.append(m["test/acc"])
            bayes.append(m["test/bayes_acc"])
            log.info("seed=%d n=%d acc=%.4f", seed, n, runs[-1])
        accs.append(runs)
    bayes_acc = sum(bayes) / len(bayes)
    grammar = build_grammar(create("convnet_bp", depth=depth).zoo_data_config)
    fig, ax = new_figure(figsize=(6, 4))
    plot_seeds(ax, list(n_trains), accs, label="convnet_bp")
    ax.axhline(bayes_acc, color="k", ls="--", label=f"BP (Bayes) accuracy = {bayes_acc:.3f}")
    ax.axhline(0.97 * bayes_acc, color="grey", ls=":", label="0.97 × BP")
    ax.axhline(1 / grammar.n_symbols, color="r", lw=0.8, label="chance")
    ax.set(
        xscale="log",
        xlabel="training sequences n",
        ylabel=f"test accuracy (root, {n_test} sequences)",
        title=f"RHM root classification, {grammar.describe().split(';')[0]}\n"
        f"{_budget(steps, batch_size, lr)}; {seeds_note(seeds)}",
    )
    ax.legend(fontsize=8)
    return fig


@register_figure("rhm_sample_complexity")
def rhm_sample_complexity(
    *,
    grammars: tuple[tuple[int, int, int], ...] = ((8, 2, 4), (16, 2, 4), (8, 4, 3)),
    ratios: tuple[float, ...] = (0.25, 0.5, 1, 2, 4),
    width: int = 64,
    steps: int = 400,
    batch_size: int = 128,
    lr: float = 3e-3,
    n_test: int = 1024,
    seeds: tuple[int, ...] = (0, 1, 2),
) -> Figure:
    """Root-classification error of ``convnet_bp`` vs training size for RHMs ``(S, n_rules,
    L)`` (branching 2, ``n_c = S`` classes), at ``n = ratio · P*`` with the RHM sample
    complexity ``P* = n_c · n_rules^L`` (Cagnetta, Petrini, Tomasini, Favero & Wyart, "How
    deep neural networks learn compositional data: the random hierarchy model", PRX 2024).
    Left: error vs n, ``P*`` marked; right: error vs ``n / P*``. BP's error is 0 (the RHM is
    unambiguous); test sequences are never training ones."""
    common = {"steps": steps, "batch_size": batch_size, "lr": lr, "n_test": n_test}
    fig, (ax, ax2) = new_figure(1, 2, figsize=(11, 4.2))
    for S, rules, depth in grammars:
        p_star = S * rules**depth
        ns = [max(2, round(r * p_star)) for r in ratios]
        errors = []
        for seed in seeds:
            runs = []
            for n in ns:
                m = _fit_and_test(
                    "convnet_bp",
                    n_train=n,
                    seed=seed,
                    n_symbols=S,
                    depth=depth,
                    width=width,
                    data={"n_rules": rules},
                    **common,
                )
                runs.append(1 - m["test/acc"])
                log.info(
                    "S=%d rules=%d L=%d seed=%d n=%d err=%.4f",
                    S,
                    rules,
                    depth,
                    seed,
                    n,
                    1 - m["test/acc"],
                )
            errors.append(runs)
        total = rhm_grammar(S, 2, depth, n_rules=rules).n_sequences()
        label = f"S = n_c = {S}, n_rules = {rules}, L = {depth}: P* = {p_star} ({total:.2g} seqs)"
        line = plot_seeds(ax, ns, errors, label=label)
        ax.axvline(p_star, color=line.get_color(), ls=":", lw=1)
        plot_seeds(ax2, list(ratios), errors, color=line.get_color(), label=label)
    from matplotlib.ticker import FormatStrFormatter, NullFormatter

    chance = [1 - 1 / S for S, _, _ in grammars]
    for a in (ax, ax2):
        a.set(xscale="log", ylabel=f"test error (1 − root accuracy, {n_test} held-out seqs)")
        a.set_ylim(-0.02, max(chance) + 0.05)
        a.legend(fontsize=7, loc="lower left")
        a.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        a.xaxis.set_minor_formatter(NullFormatter())
    ax.set(xlabel="training sequences n (dotted: P* = n_c · n_rules^L)")
    ax2.set_xticks(list(ratios))
    ax2.axvline(1.0, color="k", lw=0.8)
    ax2.set(xlabel="n / P*")
    fig.suptitle(
        f"convnet_bp on RHMs (branching 2), width {width}; {_budget(steps, batch_size, lr)}; "
        f"{seeds_note(seeds)}; BP error 0",
        fontsize=10,
    )
    return fig
