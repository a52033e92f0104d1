"""Figures of the attention family (``python recipes/reproduce.py fig=<name>``).

- ``rf_attention_risk``: test risk vs sample size of the closed-form ridge fits of
  ``rf_attention`` (zero-mean and non-zero-mean W) and ``rf_mlp`` (same number of trained
  parameters), one panel per target class, λ chosen on a validation split.
- ``lowrank_attention_rank``: test error (MSE·d) of one-layer ``lowrank_attention`` on the
  nearest-neighbour target at d = 64, N = 16 vs the rank r = d/H of its H heads, and vs the
  number of heads at a fixed rank; each point is a fresh-sample Adam run of
  :func:`zoo.core.figures.quick_fit`, and the shipped full-rank checkpoint is drawn at r = d
  with its 95 % interval (:func:`checkpoint_error`).
- ``rank_transformer``: farthest-point test error of ``rank_transformer`` vs the rank of its
  heads, at the paper's three per-layer parameter budgets and at depths 1, 3, 5
  (:func:`train_rank_transformer`).

With several ``seeds`` (data, features and initialisation), lines are the mean over seeds and
bands the min–max.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import torch
from matplotlib.figure import Figure

from zoo.core.config import Interval
from zoo.core.evaluation import Estimate
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

__all__ = [
    "checkpoint_error",
    "lowrank_attention_rank",
    "rank_transformer",
    "rf_attention_risk",
    "ridge_risk_curve",
    "train_lowrank",
    "train_rank_transformer",
]

log = logging.getLogger(__name__)


def ridge_risk_curve(
    model: Any,
    data: Any,
    sample_sizes: list[int],
    lambdas: list[float],
) -> list[float]:
    """Test risk of ``model``'s ridge fit on the first n training samples, for each n.

    ``data`` is a ``sets`` datamodule whose ``n_train`` ≥ max(sample_sizes). For each n the
    penalty λ ∈ ``lambdas`` with the smallest validation risk is kept; the returned value is
    the test risk MSE/Var(y_test) at that λ. Features are computed once and sliced; the fits
    of all λ share one eigendecomposition (:func:`~zoo.attention.ridge.ridge_path`).
    """
    from zoo.attention.ridge import ridge_path

    xs, ys = {}, {}
    for split in ("train", "val", "test"):
        x, y = data.split(split)
        xs[split], ys[split] = model.batched_features(x).double(), y.double().reshape(len(y), -1)
    var = {s: ys[s].var(0, unbiased=False).sum() for s in ("val", "test")}
    out = []
    for n in sample_sizes:
        best = (float("inf"), float("nan"))
        for v in ridge_path(xs["train"][:n], ys["train"][:n], lambdas):
            risk = {
                s: float((xs[s] @ v - ys[s]).pow(2).sum(1).mean() / var[s]) for s in ("val", "test")
            }
            best = min(best, (risk["val"], risk["test"]))
        out.append(best[1])
    return out


@register_figure("rf_attention_risk")
def rf_attention_risk(
    *,
    dim: Annotated[int, Interval(ge=1)] = 8,
    n_set: Annotated[int, Interval(ge=2)] = 9,
    heads: Annotated[int, Interval(ge=1)] = 128,
    w_mean: float = 1.0,
    targets: list[dict] | None = None,
    sample_sizes: list[int] | None = None,
    lambdas: list[float] | None = None,
    n_eval: Annotated[int, Interval(ge=1)] = 2000,
    seeds: tuple[int, ...] = (0, 1, 2),
) -> Figure:
    """Test risk vs sample size: RF attention (W zero-mean / mean w_mean·√d·I) vs RF-MLP.

    Args:
        targets: ``[{"name": <target>, **target_params}, ...]``, one panel each.
        sample_sizes: training-set sizes n.
        lambdas: ridge penalties, selected per n on a validation split of size ``n_eval``.
    """
    from matplotlib.ticker import NullFormatter

    targets = targets or [
        {"name": "key_power", "p": 1},
        {"name": "key_hermite", "k": 2},
        {"name": "key_exp", "beta": 1.0},
    ]
    sample_sizes = sorted(sample_sizes or [250, 500, 1000, 2000, 4000, 8000])
    lambdas = sorted(lambdas or [10.0**e for e in range(-6, 1)])
    models = {
        "RF attention, W zero mean": ("rf_attention", {"heads": heads, "w_mean": 0.0}),
        f"RF attention, E W = {w_mean:g}·√d·I": (
            "rf_attention",
            {"heads": heads, "w_mean": w_mean},
        ),
        "RF-MLP, same #params": ("rf_mlp", {"match_heads": heads, "n_set": n_set}),
    }
    fig, axes = new_figure(1, len(targets), figsize=(4.2 * len(targets), 3.6), squeeze=False)
    for ax, tcfg in zip(axes[0], targets):
        tcfg = dict(tcfg)
        tname = tcfg.pop("name")
        risks: dict[str, list[list[float]]] = {label: [] for label in models}
        for seed in seeds:
            data = create_datamodule(
                "rf_attention",
                dim=dim,
                n_set=n_set,
                target=tname,
                target_params=tcfg,
                n_train=max(sample_sizes),
                n_val=n_eval,
                n_test=n_eval,
                seed=seed,
                device="cpu",
            )
            for label, (name, kw) in models.items():
                model = create(name, dim=dim, feature_seed=seed, **kw)
                risks[label].append(ridge_risk_curve(model, data, sample_sizes, lambdas))
                log.info("%s %s seed=%d: %s", tname, label, seed, risks[label][-1])
        for label, runs in risks.items():
            line = plot_seeds(ax, sample_sizes, runs, label=label)
            last = sum(r[-1] for r in runs) / len(runs)
            ax.annotate(
                f"{last:.3g}",
                (sample_sizes[-1], last),
                color=line.get_color(),
                textcoords="offset points",
                xytext=(4, 0),
                va="center",
                fontsize=7,
            )
        params = ", ".join(f"{k}={v}" for k, v in tcfg.items())
        ax.set(xscale="log", yscale="log", xlabel="training samples n", title=f"{tname}({params})")
        ax.set_xticks(sample_sizes, [str(n) for n in sample_sizes], fontsize=8)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.axhline(1.0, color="grey", lw=0.8, ls=":")
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("test risk  MSE / Var(y)")
    # in the second panel (key_hermite by default) the lower left stays free of curves
    axes[0][min(1, len(targets) - 1)].legend(fontsize=8, loc="lower left")
    fig.suptitle(
        f"closed-form ridge fits on n training sets, d = {dim}, N = {n_set - 1} keys, "
        f"M = {heads} heads ({seeds_note(seeds)})\nλ ∈ [{lambdas[0]:g}, {lambdas[-1]:g}] "
        f"({len(lambdas)} values) picked per n on {n_eval} validation sets, risk on {n_eval} "
        "test sets",
        fontsize=10,
    )
    return fig


def train_lowrank(
    *,
    dim: int,
    n_keys: int,
    heads: int,
    rank: int | None,
    steps: int,
    batch_size: int,
    lr: float,
    temperature: float,
    layers: int = 1,
    n_test: int = 4096,
    seed: int = 0,
) -> float:
    """Train ``lowrank_attention`` on fresh nearest-neighbour samples; return test error.

    Runs :func:`~zoo.core.figures.quick_fit` on the registered ``sets`` datamodule
    (``resample=True``, so every batch is new) for ``steps`` Adam steps with a cosine
    schedule; the error is MSE·d on a held-out test split (predicting 0 scores 1).
    """
    seed_everything(seed)
    model = create(
        "lowrank_attention",
        dim=dim,
        heads=heads,
        rank=rank,
        layers=layers,
        temperature=temperature,
        lr=lr,
        scheduler="cosine",
    )
    return fit_on_fresh_sets(
        model, n_set=n_keys + 1, steps=steps, batch_size=batch_size, n_test=n_test, seed=seed
    )


def fit_on_fresh_sets(
    model: Any,
    *,
    n_set: int,
    steps: int,
    batch_size: int,
    n_test: int,
    seed: int,
    accelerator: str = "cpu",
) -> float:
    """``steps`` steps of :func:`~zoo.core.figures.quick_fit` of ``model`` on its ``sets``
    datamodule (epochs of at most 64 batches of ``batch_size`` fresh sets, drawn on the
    trainer's device); the test error on ``n_test`` held-out sets of ``seed``."""
    data = create_datamodule(
        model,
        n_set=n_set,
        n_train=min(steps, 64) * batch_size,
        n_val=batch_size,
        n_test=n_test,
        batch_size=batch_size,
        seed=seed,
        device="cuda" if accelerator == "gpu" else "cpu",
    )
    quick_fit(model, data, max_steps=steps, seed=seed, accelerator=accelerator)
    return quick_test(model, data, accelerator=accelerator)["test/error"]


def checkpoint_error(
    name: str, *, dim: int, n_keys: int, temperature: float, n_test: int
) -> Estimate | None:
    """``test/error`` of the shipped checkpoint ``name`` on ``n_test`` sets of its own data
    seed, with its 95 % interval; ``None`` (and a log line) when it is missing or not a
    one-layer query model of this ``dim``, ``n_keys``, ``temperature``."""
    from zoo.core.checkpoint import load
    from zoo.core.evaluation import estimates, fold

    try:
        model = load(name)
    except (FileNotFoundError, ValueError) as err:
        log.info("no reference checkpoint %r: %s", name, err)
        return None
    hp, data = model.hparams, model.zoo_data_config or {}
    got = (hp.dim, data.get("n_set"), hp.temperature, hp.layers, hp.self_attention)
    if got != (dim, n_keys + 1, temperature, 1, False):
        log.info("reference checkpoint %r is another setting %s: not drawn", name, got)
        return None
    metrics = fold(quick_test(model, create_datamodule(model, n_test=n_test, device="cpu")))
    return estimates(metrics)["test/error"]


@register_figure("lowrank_attention_rank")
def lowrank_attention_rank(
    *,
    dim: Annotated[int, Interval(ge=1)] = 64,
    n_keys: Annotated[int, Interval(ge=1)] = 16,
    ranks: list[int] | None = None,
    fixed_rank: Annotated[int, Interval(ge=1)] = 4,
    head_counts: list[int] | None = None,
    steps: Annotated[int, Interval(ge=1)] = 1200,
    batch_size: Annotated[int, Interval(ge=1)] = 256,
    lr: Annotated[float, Interval(gt=0)] = 3e-3,
    temperature: Annotated[float, Interval(gt=0)] = 256.0,
    n_test: Annotated[int, Interval(ge=1)] = 8192,
    checkpoint: str | None = "lowrank_attention",
    checkpoint_n_test: Annotated[int, Interval(ge=1)] = 80000,
    seeds: tuple[int, ...] = (0, 1, 2),
) -> Figure:
    """Error vs rank (H = d/r heads) and vs number of heads at rank ``fixed_rank``.

    One layer, d = ``dim``, N = ``n_keys``; every point is one :func:`train_lowrank` run of
    ``steps`` Adam steps per seed, scored on ``n_test`` test sets of that seed (runs shared
    by both panels are trained once). ``checkpoint``: a shipped full-rank checkpoint of the
    same setting, evaluated on ``checkpoint_n_test`` sets and drawn at r = d with its 95 %
    interval (``None``: not drawn).
    """
    from matplotlib.ticker import NullFormatter

    ranks = sorted(ranks or [1, 4, 16, 64])
    head_counts = sorted(head_counts or [1, 4, 16])
    bad = [r for r in ranks if dim % r]
    if bad:
        raise ValueError(f"ranks {bad} do not divide dim={dim} (H = d/r heads)")
    common = {
        "dim": dim,
        "n_keys": n_keys,
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "temperature": temperature,
        "n_test": n_test,
    }
    errors: dict[tuple[int, int, int], float] = {}

    def error(heads: int, rank: int, seed: int) -> float:
        if (heads, rank, seed) not in errors:
            errors[heads, rank, seed] = train_lowrank(heads=heads, rank=rank, seed=seed, **common)
        return errors[heads, rank, seed]

    by_rank, by_heads = [], []
    for seed in seeds:
        by_rank.append([error(dim // r, r, seed) for r in ranks])
        log.info("seed %d, ranks %s (H = d/r): errors %s", seed, ranks, by_rank[-1])
        by_heads.append([error(h, fixed_rank, seed) for h in head_counts])
        log.info(
            "seed %d, H = %s of rank %d: errors %s", seed, head_counts, fixed_rank, by_heads[-1]
        )
    ref = None
    if checkpoint is not None:
        ref = checkpoint_error(
            checkpoint, dim=dim, n_keys=n_keys, temperature=temperature, n_test=checkpoint_n_test
        )

    fig, (a1, a2) = new_figure(1, 2, figsize=(9.5, 3.8))
    plot_seeds(a1, ranks, by_rank, label=f"{steps} steps per run")
    a1.set(xscale="log", yscale="log", xlabel="rank r per head (H = d/r heads)")
    a1.set_xticks(ranks, [str(r) for r in ranks])
    a1.set_ylabel("test error  MSE·d")
    plot_seeds(a2, head_counts, by_heads, "s-", color="C1")
    for ax, xs, runs in ((a1, ranks, by_rank), (a2, head_counts, by_heads)):
        for xv, yv in zip(xs, torch.tensor(runs).mean(0).tolist()):
            ax.annotate(
                f"{yv:.3g}",
                (xv, yv),
                textcoords="offset points",
                xytext=(0, 5),
                ha="center",
                fontsize=7,
            )
    if ref is not None:
        a1.errorbar(
            [dim],
            [ref.value],
            yerr=[[ref.value - ref.lo], [ref.hi - ref.value]],
            fmt="*",
            color="C3",
            ms=9,
            capsize=3,
            label=f"shipped checkpoint (10 048 steps): {ref.value:.3g}, n = {ref.n}",
        )
    a1.legend(fontsize=7, loc="lower left")
    a2.set(xscale="log", yscale="log", xlabel=f"number of heads H (rank {fixed_rank} each)")
    a2.set_xticks(head_counts, [str(h) for h in head_counts])
    for ax in (a1, a2):
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.axhline(1.0, color="grey", lw=0.8, ls=":")
        ax.grid(alpha=0.3, which="both")
    fig.suptitle(
        f"nearest neighbour, d = {dim}, N = {n_keys}, one layer: {steps} Adam steps "
        f"× {batch_size} fresh samples per run, test on {n_test} sets ({seeds_note(seeds)})",
        fontsize=10,
    )
    return fig


def train_rank_transformer(
    *,
    dim: int,
    n_points: int,
    heads: int,
    rank: int,
    steps: int,
    batch_size: int,
    lr: float,
    layers: int = 1,
    ff: int = 0,
    norm: str = "l2_fixed",
    n_test: int = 4096,
    seed: int = 0,
    accelerator: str = "cpu",
) -> float:
    """Train ``rank_transformer`` on fresh farthest-point sets; return its test error.

    ``steps`` AdamW steps (cosine schedule) of :func:`~zoo.core.figures.quick_fit` on the
    registered ``sets`` datamodule (``self_farthest``, ``resample=True``: every epoch of 64
    batches is new), data drawn on the trainer's device (``accelerator`` ``"cpu"`` or
    ``"gpu"``); the error is MSE·d per point on ``n_test`` held-out sets of ``seed``.
    """
    seed_everything(seed)
    model = create(
        "rank_transformer",
        dim=dim,
        heads=heads,
        rank=rank,
        layers=layers,
        ff=ff,
        norm=norm,
        optimizer="adamw",
        lr=lr,
        scheduler="cosine",
    )
    return fit_on_fresh_sets(
        model,
        n_set=n_points,
        steps=steps,
        batch_size=batch_size,
        n_test=n_test,
        seed=seed,
        accelerator=accelerator,
    )


@register_figure("rank_transformer")
def rank_transformer(
    *,
    dim: Annotated[int, Interval(ge=1)] = 16,
    n_points: Annotated[int, Interval(ge=2)] = 16,
    ranks: list[int] | None = None,
    budgets: list[float] | None = None,
    depths: list[int] | None = None,
    steps: Annotated[int, Interval(ge=1)] = 300,
    batch_size: Annotated[int, Interval(ge=1)] = 64,
    lr: Annotated[float, Interval(gt=0)] = 5e-2,
    ff: Annotated[int, Interval(ge=0)] = 0,
    norm: str = "l2_fixed",
    n_test: Annotated[int, Interval(ge=1)] = 2048,
    accelerator: str = "cpu",
    seeds: tuple[int, ...] = (0, 1, 2),
) -> Figure:
    """Farthest-point error of a transformer vs the rank r of its heads, per parameter budget
    and per depth (Amsel, Yehudai & Bruna's figure, at a reduced budget).

    Left: one block, budget d^e per attention layer for e in ``budgets`` (H·r = d^(e−1), so
    H = d^(e−1)/r heads of rank r). Right: ``depths`` blocks of budget d² each (H = d/r).
    Every point is one :func:`train_rank_transformer` run of ``steps`` steps per seed on
    ``n_points`` points in R^``dim``, scored on ``n_test`` test sets (runs shared by both
    panels are trained once). ``accelerator="gpu"`` runs the same code on a GPU.
    """
    from matplotlib.ticker import NullFormatter

    ranks = sorted(ranks or [1, 4, 16])
    budgets = sorted(budgets or [2.0, 2.5, 3.0])
    depths = sorted(depths or [1, 3, 5])
    width = {e: round(dim ** (e - 1)) for e in budgets}  # H·r of each budget
    bad = [(e, r) for e in budgets for r in ranks if r > dim or width[e] % r]
    if bad:
        raise ValueError(f"(budget, rank) {bad}: need r <= dim and r | d^(e−1) = H·r")
    common = {
        "dim": dim,
        "n_points": n_points,
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "ff": ff,
        "norm": norm,
        "n_test": n_test,
        "accelerator": accelerator,
    }
    errors: dict[tuple[int, int, int, int], float] = {}

    def error(heads: int, rank: int, layers: int, seed: int) -> float:
        key = (heads, rank, layers, seed)
        if key not in errors:
            errors[key] = train_rank_transformer(
                heads=heads, rank=rank, layers=layers, seed=seed, **common
            )
            log.info("H=%d r=%d L=%d seed=%d: error %.4g", *key, errors[key])
        return errors[key]

    by_budget = {
        e: [[error(width[e] // r, r, 1, s) for r in ranks] for s in seeds] for e in budgets
    }
    by_depth = {L: [[error(dim // r, r, L, s) for r in ranks] for s in seeds] for L in depths}

    fig, (a1, a2) = new_figure(1, 2, figsize=(10, 4.0))
    for i, e in enumerate(budgets):
        plot_seeds(
            a1, ranks, by_budget[e], label=f"budget d^{e:g} (H·r = {width[e]})", color=f"C{i}"
        )
    for i, L in enumerate(depths):
        plot_seeds(a2, ranks, by_depth[L], "s-", label=f"{L} layer(s)", color=f"C{i + 3}")
    for ax, title in ((a1, "one layer, per-layer budget H·r·d"), (a2, "budget d² per layer")):
        ax.set(xscale="log", yscale="log", xlabel="rank r per head", title=title)
        ax.set_xticks(ranks, [str(r) for r in ranks])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.axhline(1.0, color="grey", lw=0.8, ls=":", label="predicting 0")
        # a unit vector uncorrelated with the answer: ‖u − y‖² = 2 (what x/‖x‖ outputs start at)
        ax.axhline(2.0, color="grey", lw=0.8, ls="--", label="unit vector orthogonal to the answer")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, loc="lower left")
    a1.set_ylabel("test error  MSE·d per point")
    fig.suptitle(
        f"farthest point (self-attention), d = {dim}, N = {n_points}: {steps} AdamW steps × "
        f"{batch_size} fresh sets per run, lr {lr:g}, ff = {ff}, norm {norm}\nreduced budget "
        f"(paper: d = 64, ~10⁵ steps); test on {n_test} sets ({seeds_note(seeds)})",
        fontsize=9,
    )
    return fig
