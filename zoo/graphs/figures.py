"""The neural-collapse findings of Kothapalli, Tirer & Bruna ("A Neural Collapse Perspective on
Feature Evolution in Graph Neural Networks", NeurIPS 2023) on SBM graphs, as figures.

Registered with :func:`zoo.core.figures.register_figure`, run with
``python recipes/reproduce.py fig=<name> [fig.<param>=...]`` (PNG + PDF into ``docs/figures/``):

- ``gnn_nc_training``: NC1 of the last-layer features on training and held-out graphs
  during training of ``gnn_nc`` — it drops, then plateaus well above 0 (partial collapse).
- ``gnn_nc_depth``: log₁₀ NC1 across the layers of a trained ``gnn_nc`` (features Hˡ and
  aggregated features ÂHˡ) against the spectral methods across power iterations
  (normalised Laplacian, Bethe Hessian), on the same held-out graphs.
- ``gnn_nc_threshold``: test overlap against a − b at fixed a + b (p = a/N, q = b/N) for
  ``gnn_nc`` and the spectral methods, with the detectability threshold
  (a − b)² = C (a + (C − 1) b) marked.
- ``gnn_nc_depth_paper``: the paper's depth panels — the shipped GNNs with and without the
  self weight W₁, at our SBM density and at the paper code's effective density, against the
  spectral methods.
- ``gnn_nc_heterophilic``: log₁₀ NC1 across depth on homophilic and heterophilic (p ↔ q)
  graphs, with and without W₁.
- ``gufm_regular``: the graph unconstrained-features model collapses exactly on regular SBM
  graphs and not on ordinary ones (:mod:`zoo.graphs.gufm`).
- ``gnn_nc_partial_collapse``: training-graph NC1 of ``gnn_nc`` during training in the
  node-wise setting (SBM graphs) against the same network used instance-wise (no edges, each
  node an independent sample whose input carries its class): the paper's contrast between
  the partial collapse of node-wise and the stronger collapse of instance-wise classifiers.

NC values are per graph (each graph's communities are its own classes). The per-graph NC1
is heavy tailed (a graph whose communities are not yet separated has a near-singular Σ_B),
so each run (seed) is summarised by the mean over its graphs of log₁₀ NC1 — the statistic
Kothapalli et al. plot and the models log (``..._nc1_log10_mean``) — and its arithmetic
mean, dominated by single graphs, is not used. Every curve is the mean over ``seeds`` of
that per-seed value with a min–max band over seeds (:func:`zoo.core.figures.plot_seeds`);
overlap curves likewise. A seed draws new graphs and, where the figure trains, a new
initialisation and graph order. GNNs train with :func:`zoo.core.figures.quick_fit`.
Everything runs on the CPU with the defaults in a few minutes (one core).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import pytorch_lightning as pl
import torch
from matplotlib.figure import Figure
from torch import Tensor

from zoo.core.checkpoint import load
from zoo.core.config import Interval
from zoo.core.figures import (
    StepTrace,
    new_figure,
    plot_seeds,
    quick_fit,
    register_figure,
    seed_everything,
    seeds_note,
)
from zoo.core.registry import create, create_datamodule
from zoo.graphs.collapse import class_statistics, nc_from_statistics, overlap
from zoo.graphs.data import regular_sbm_degrees
from zoo.graphs.models import PAPER_DENSITY
from zoo.graphs.spectral import power_iterations, predict

__all__ = [
    "gnn_nc_depth",
    "gnn_nc_depth_paper",
    "gnn_nc_heterophilic",
    "gnn_nc_partial_collapse",
    "gnn_nc_threshold",
    "gnn_nc_training",
    "gufm_regular",
    "per_graph_nc1",
]

log = logging.getLogger(__name__)

_POWER_METHODS = {
    "laplacian": ("normalised Laplacian", "tab:green"),
    "bethe_hessian": ("Bethe Hessian", "tab:red"),
}


# -- helpers ------------------------------------------------------------------------------
def per_graph_nc1(
    features: Tensor, labels: Tensor, num_classes: int, batch: Tensor | None
) -> Tensor:
    """NC1 of every graph: features (N, F), labels (N,), batch (N,) → (G,) float64."""
    return nc_from_statistics(*class_statistics(features, labels, num_classes, batch))["nc1"]


def _sbm_kwargs(n_nodes: int, a: float, b: float) -> dict[str, float | int]:
    return {"n_nodes": n_nodes, "p": min(a / n_nodes, 1.0), "q": min(b / n_nodes, 1.0)}


@torch.no_grad()
def _forward_graphs(model: Any, graphs: list[Any]) -> list[tuple[Tensor, dict[str, list[Tensor]]]]:
    """``model(g, return_features=True)`` for each graph separately, in eval mode.

    One graph per forward, as in training: the GNNs' BatchNorm uses the statistics of the
    nodes it sees, so batching graphs together would change every graph's features.
    """
    was_training = model.training
    model.eval()
    out = [model(g, return_features=True) for g in graphs]
    model.train(was_training)
    return out


def _layer_nc1(model: Any, graphs: list[Any], kind: str = "h") -> Tensor:
    """NC1 of every layer of ``model`` on every graph: (L + 1, G) (eval mode, no grad)."""
    c = model.hparams.n_classes
    per_graph = [
        torch.stack([per_graph_nc1(f, g.y, c, None)[0] for f in feats[kind]])
        for g, (_, feats) in zip(graphs, _forward_graphs(model, graphs))
    ]
    return torch.stack(per_graph, 1)


def _gnn_overlap(model: Any, graphs: list[Any]) -> Tensor:
    """Overlap of ``model`` on every graph (one graph per forward): (G,)."""
    c = model.hparams.n_classes
    return torch.stack(
        [
            overlap(logits.argmax(1), g.y, c)[0]
            for g, (logits, _) in zip(graphs, _forward_graphs(model, graphs))
        ]
    )


def _spectral_runs(
    graphs: list[Any], num_classes: int, operator: str, n_iter: int, seed: int
) -> tuple[Tensor, Tensor]:
    """Per-iteration NC1 (n_iter + 1, G) and final overlap (G,) of a spectral method."""
    from torch_geometric.data import Batch

    data = Batch.from_data_list(graphs)
    gen = torch.Generator().manual_seed(seed)
    nc1, last = [], None
    for emb in power_iterations(
        data.edge_index,
        data.num_nodes,
        num_classes,
        operator=operator,
        n_iter=n_iter,
        batch=data.batch,
        generator=gen,
    ):
        nc1.append(per_graph_nc1(emb, data.y, num_classes, data.batch))
        last = emb
    assert last is not None
    ov = overlap(predict(last, num_classes, data.batch), data.y, num_classes, data.batch)
    return torch.stack(nc1), ov


def _mean_log10(values: Tensor) -> Tensor:
    """Mean over graphs (the last dim) of log₁₀ of positive per-graph values: (..., G) → (...)."""
    return values.double().log10().mean(-1)


def _budget(depth: int, epochs: int, n_train: int) -> str:
    """``"gnn_nc depth 32, 8 epochs × 64 graphs = 512 SGD steps"``."""
    return (
        f"gnn_nc depth {depth}, {epochs} epochs × {n_train} graphs = {epochs * n_train} SGD steps"
    )


def _fmt(v: Tensor) -> str:
    return "[" + ", ".join(f"{float(x):.3g}" for x in v) + "]"


def _probe(train_graphs: list[Any], test_graphs: list[Any]) -> Callable[[Any], dict[str, Any]]:
    """``module → {"train": (G,), "test": (G,) last-layer NC1, "overlap": held-out mean}``."""

    def measure(module: Any) -> dict[str, Any]:
        c = module.hparams.n_classes
        graphs = {"train": train_graphs, "test": test_graphs}
        outs = {split: _forward_graphs(module, gs) for split, gs in graphs.items()}
        out: dict[str, Any] = {
            split: torch.stack(
                [per_graph_nc1(f["h"][-1], g.y, c, None)[0] for g, (_, f) in zip(gs, outs[split])]
            )
            for split, gs in graphs.items()
        }
        ov = [overlap(lg.argmax(1), g.y, c)[0] for g, (lg, _) in zip(test_graphs, outs["test"])]
        out["overlap"] = float(torch.stack(ov).mean())
        return out

    return measure


def _sbm_datamodule(seed: int, n_nodes: int, a: float, b: float, **sizes: int) -> Any:
    """``gnn_nc``'s SBM datamodule with p = a/N, q = b/N."""
    return create_datamodule("gnn_nc", seed=seed, **_sbm_kwargs(n_nodes, a, b), **sizes)


def _train_gnn(
    dm: Any,
    depth: int,
    epochs: int,
    seed: int,
    callbacks: Sequence[pl.Callback] = (),
    name: str = "gnn_nc",
) -> Any:
    """``name`` (a ``gnn_nc`` variant) of ``depth`` trained ``epochs`` on ``dm`` (paper
    optimiser); eval mode."""
    seed_everything(seed)
    model = create(name, depth=depth, track_collapse=False, nc1_depth_level=None)
    model.zoo_data_config = dm.config
    quick_fit(model, dm, max_epochs=epochs, seed=seed, callbacks=callbacks)
    return model


# -- figures ------------------------------------------------------------------------------
@register_figure("gnn_nc_training")
def gnn_nc_training(
    *,
    n_nodes: Annotated[int, Interval(ge=10)] = 1000,
    a: Annotated[float, Interval(ge=0)] = 25.0,
    b: Annotated[float, Interval(ge=0)] = 1.7,
    n_train: Annotated[int, Interval(ge=1)] = 64,
    n_probe: Annotated[int, Interval(ge=1)] = 8,
    epochs: Annotated[int, Interval(ge=1)] = 8,
    depth: Annotated[int, Interval(ge=1)] = 32,
    every_n_steps: Annotated[int, Interval(ge=1)] = 8,
    seeds: tuple[int, ...] = (0, 1, 2),
) -> Figure:
    """NC1 of the last-layer features Hᴸ during training of ``gnn_nc``.

    Trains ``gnn_nc`` (paper defaults: width 8, SGD lr 4e-3, one graph per step) on
    ``n_train`` SBM graphs (p = a/N, q = b/N) per seed and every ``every_n_steps`` steps
    measures NC1 of Hᴸ on ``n_probe`` training graphs and ``n_probe`` held-out test graphs
    (eval mode), plus the held-out overlap. Curves: mean over seeds of the per-seed mean of
    log₁₀ NC1 over the probe graphs, band min–max over seeds.
    """
    sizes = {"n_train": n_train, "n_val": 1, "n_test": n_probe, "batch_size": 1}
    nc1: dict[str, list[Tensor]] = {"train": [], "test": []}  # per seed: (T,) mean log10 NC1
    overlaps = []  # per seed: (T,)
    for seed in seeds:
        dm = _sbm_datamodule(seed, n_nodes, a, b, **sizes)
        trace = StepTrace(_probe(dm.split("train")[:n_probe], dm.split("test")), every_n_steps)
        _train_gnn(dm, depth, epochs, seed, callbacks=(trace,))
        for split in nc1:
            nc1[split].append(_mean_log10(torch.stack([v[split] for v in trace.values])))
        overlaps.append([v["overlap"] for v in trace.values])
    steps = trace.steps
    runs = {k: torch.stack(v) for k, v in nc1.items()}  # (seeds, T)
    first = {k: float(v[:, 0].mean()) for k, v in runs.items()}
    last = {k: float(v[:, -1].mean()) for k, v in runs.items()}
    final_overlap = sum(o[-1] for o in overlaps) / len(overlaps)
    fig, (ax, ax2) = new_figure(2, 1, figsize=(6, 5.5), sharex=True, height_ratios=[3, 1.3])
    plot_seeds(ax, steps, runs["train"], ".-", color="tab:blue", label="training graphs")
    plot_seeds(ax, steps, runs["test"], ".-", color="tab:orange", label="held-out graphs")
    for e in range(1, epochs):
        ax.axvline(e * n_train, color="0.85", lw=0.8, zorder=0)
        ax2.axvline(e * n_train, color="0.85", lw=0.8, zorder=0)
    ax.set_ylabel(r"mean over graphs of $\log_{10}$ NC1 of $H^L$")
    ax.set_title(
        f"{_budget(depth, epochs, n_train)}, SBM N={n_nodes}, a={a:g}, b={b:g}\n"
        f"NC1 on {n_probe} training / {n_probe} held-out graphs per seed; {seeds_note(seeds)}",
        fontsize=9,
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    ax.text(
        0.3, 0.45,
        f"mean log$_{{10}}$ NC1 of $H^L$, train / held out: step 0 {first['train']:.2f} / "
        f"{first['test']:.2f}\nstep {steps[-1]}: {last['train']:.2f} / {last['test']:.2f};"
        f" held-out overlap {final_overlap:.4f}",
        transform=ax.transAxes, fontsize=8, va="bottom",
        bbox={"facecolor": "white", "alpha": 0.8, "lw": 0},
    )  # fmt: skip
    plot_seeds(ax2, steps, overlaps, ".-", color="tab:orange")
    ax2.set_ylabel("held-out\noverlap")
    ax2.set_xlabel(f"SGD step (one graph per step; grey lines = epochs of {n_train} graphs)")
    ax2.grid(alpha=0.3)
    log.info(
        "gnn_nc_training: mean log10 NC1 per seed, step 0 train %s / test %s; step %d train %s"
        " / test %s; held-out overlap per seed %s",
        _fmt(runs["train"][:, 0]), _fmt(runs["test"][:, 0]), steps[-1],
        _fmt(runs["train"][:, -1]), _fmt(runs["test"][:, -1]),
        _fmt(torch.tensor([o[-1] for o in overlaps])),
    )  # fmt: skip
    return fig


@register_figure("gnn_nc_depth")
def gnn_nc_depth(
    *,
    checkpoint: str | None = "gnn_nc",
    n_nodes: Annotated[int, Interval(ge=10)] = 1000,
    a: Annotated[float, Interval(ge=0)] = 25.0,
    b: Annotated[float, Interval(ge=0)] = 1.7,
    n_train: Annotated[int, Interval(ge=1)] = 64,
    n_test: Annotated[int, Interval(ge=1)] = 16,
    epochs: Annotated[int, Interval(ge=1)] = 8,
    depth: Annotated[int, Interval(ge=1)] = 32,
    n_iter: Annotated[int, Interval(ge=1)] = 32,
    seeds: tuple[int, ...] = (0, 1, 2),
) -> Figure:
    """log₁₀ NC1 across the layers of a trained GNN vs across spectral power iterations.

    The GNN is ``load(checkpoint)`` when ``checkpoint`` is given (a registered name such as
    ``"gnn_nc"``, a directory or an ``hf-hub:`` id; its test graphs are regenerated with each
    seed), else ``gnn_nc`` trained here per seed for ``epochs`` on ``n_train`` graphs. NC1
    is measured on ``n_test`` held-out graphs per seed for Hˡ and ÂHˡ, ℓ = 0..L, and for the
    embeddings of ``n_iter`` steps of the two spectral methods on the same graphs. Curves:
    mean over seeds of the per-seed mean of log₁₀ NC1 over the graphs, band min–max.
    """
    sizes = {"n_train": n_train, "n_val": 1, "n_test": n_test, "batch_size": 1}
    kinds = {"h": r"GNN $H^\ell$", "ah": r"GNN $\hat A H^\ell$"}
    layer_nc1: dict[str, list[Tensor]] = {k: [] for k in kinds}  # per seed: (L + 1,)
    power: dict[str, list[Tensor]] = {op: [] for op in _POWER_METHODS}  # per seed: (T + 1,)
    power_overlap: dict[str, list[float]] = {op: [] for op in _POWER_METHODS}
    model = load(checkpoint) if checkpoint else None
    for seed in seeds:
        if model is not None:
            dm = create_datamodule(model, seed=seed, n_test=n_test)
            trained = model
        else:
            dm = _sbm_datamodule(seed, n_nodes, a, b, **sizes)
            trained = _train_gnn(dm, depth, epochs, seed)
        graphs = dm.split("test")
        for kind in kinds:
            layer_nc1[kind].append(_mean_log10(_layer_nc1(trained, graphs, kind)))
        for op in _POWER_METHODS:
            nc1, ov = _spectral_runs(graphs, trained.hparams.n_classes, op, n_iter, seed)
            power[op].append(_mean_log10(nc1))
            power_overlap[op].append(float(ov.mean()))
    if model is not None:
        title = (
            f"checkpoint {checkpoint} (depth {model.hparams.depth}, trained "
            f"{model.zoo_data_config.get('n_train', '?')} graphs; see its card), "
            "test graphs regenerated per seed"
        )
    else:
        title = _budget(depth, epochs, n_train)
    hp = dm.hparams
    fig, ax = new_figure(figsize=(6.5, 4.2))
    for kind, label in kinds.items():
        runs = torch.stack(layer_nc1[kind])  # (seeds, L + 1)
        end = float(runs[:, -1].mean())
        label = f"{label} (ℓ={runs.shape[1] - 1}: {end:.2f})"
        color = "tab:blue" if kind == "h" else "tab:purple"
        plot_seeds(ax, list(range(runs.shape[1])), runs, "o-", color=color, ms=3, label=label)
        log.info("gnn_nc_depth %s: mean log10 NC1 per layer %s", kind, _fmt(runs.mean(0)))
    for op, (label, color) in _POWER_METHODS.items():
        runs = torch.stack(power[op])
        ov = sum(power_overlap[op]) / len(seeds)
        label = f"{label} (t={n_iter}: {float(runs[:, -1].mean()):.2f}; overlap {ov:.3f})"
        plot_seeds(ax, list(range(n_iter + 1)), runs, "--", color=color, label=label)
        log.info("gnn_nc_depth %s: mean log10 NC1 per iteration %s", op, _fmt(runs.mean(0)))
        log.info("gnn_nc_depth %s: overlap per seed %s", op, _fmt(torch.tensor(power_overlap[op])))
    ax.set_xlabel(r"GNN layer $\ell$  /  power iteration $t$")
    ax.set_ylabel(r"mean over graphs of $\log_{10}$ NC1")
    ax.set_title(
        f"{title}\nSBM N={hp.n_nodes}, C={hp.n_classes}, p={hp.p:.3g}, q={hp.q:.3g}, "
        f"{len(graphs)} held-out graphs per seed; {seeds_note(seeds)}",
        fontsize=8,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


@register_figure("gnn_nc_threshold")
def gnn_nc_threshold(
    *,
    n_nodes: Annotated[int, Interval(ge=10)] = 1000,
    a_plus_b: Annotated[float, Interval(gt=0)] = 20.0,
    a_minus_b: tuple[float, ...] = (0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0, 16.0, 18.0),
    n_train: Annotated[int, Interval(ge=1)] = 64,
    n_test: Annotated[int, Interval(ge=1)] = 16,
    epochs: Annotated[int, Interval(ge=1)] = 3,
    depth: Annotated[int, Interval(ge=1)] = 16,
    n_iter: Annotated[int, Interval(ge=1)] = 64,
    seeds: tuple[int, ...] = (0, 1, 2),
) -> Figure:
    """Held-out overlap vs a − b at fixed a + b (C = 2), GNN and spectral methods.

    For every a − b and seed, ``gnn_nc`` is trained for ``epochs`` on ``n_train`` graphs and
    tested on ``n_test`` held-out graphs; the spectral methods run ``n_iter`` power steps on
    the same test graphs. The detectability threshold (a − b)² = 2(a + b) is drawn as a
    vertical line. Keep b > 0 (a − b < a + b): with b = 0 the graph splits into its two
    communities and the Bethe Hessian's two lowest eigenvalues coincide, so its Ritz vectors
    are arbitrary.
    """
    bad = [d for d in a_minus_b if not 0 <= d <= a_plus_b]
    if bad:
        raise ValueError(f"a_minus_b={bad} must lie in [0, a_plus_b={a_plus_b}]")
    c = 2
    sizes = {"n_train": n_train, "n_val": 1, "n_test": n_test, "batch_size": 1}
    results: dict[str, list[list[float]]] = {"gnn": [], **{op: [] for op in _POWER_METHODS}}
    for seed in seeds:
        row: dict[str, list[float]] = {k: [] for k in results}
        for diff in a_minus_b:
            a, b = (a_plus_b + diff) / 2, (a_plus_b - diff) / 2
            dm = _sbm_datamodule(seed, n_nodes, a, b, **sizes)
            graphs = dm.split("test")
            row["gnn"].append(
                float(_gnn_overlap(_train_gnn(dm, depth, epochs, seed), graphs).mean())
            )
            for op in _POWER_METHODS:
                row[op].append(float(_spectral_runs(graphs, c, op, n_iter, seed)[1].mean()))
            last = {k: v[-1] for k, v in row.items()}
            log.info("gnn_nc_threshold seed=%d a-b=%g: %s", seed, diff, last)
        for k, v in row.items():
            results[k].append(v)
    fig, ax = new_figure(figsize=(6, 4))
    xs = list(a_minus_b)
    label = f"gnn_nc (depth {depth}, trained per point)"
    plot_seeds(ax, xs, results["gnn"], color="tab:blue", label=label)
    for x, y in zip(xs, torch.tensor(results["gnn"]).mean(0).tolist()):
        kw = {"textcoords": "offset points", "fontsize": 7, "ha": "center"}
        ax.annotate(f"{y:.2f}", (x, y), xytext=(0, 6), color="tab:blue", **kw)
    for op, (label, color) in _POWER_METHODS.items():
        plot_seeds(ax, xs, results[op], "s--", color=color, label=f"{label} ({n_iter} steps)")
    thr = math.sqrt(c * a_plus_b)  # (a − b)² = C(a + (C − 1) b) = C(a + b) for C = 2
    ax.axvline(thr, color="k", ls=":", label=f"threshold (a−b)²=2(a+b): a−b={thr:.2f}")
    ax.set_xlabel("a − b")
    ax.set_ylabel("held-out overlap (mean over test graphs)")
    ax.set_title(
        f"SBM N={n_nodes}, C=2, a+b={a_plus_b:g}, {n_test} held-out graphs per point; "
        f"{seeds_note(seeds)}\nGNN per point and seed: {_budget(depth, epochs, n_train)}",
        fontsize=9,
    )
    ax.set_ylim(-0.05, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


#: with and without W₁, at our density and at the paper code's (``fig=gnn_nc_depth_paper``)
DEPTH_PAPER_CHECKPOINTS = ("gnn_nc", "gnn_nc_noself", "gnn_nc_paper", "gnn_nc_paper_noself")


@register_figure("gnn_nc_depth_paper")
def gnn_nc_depth_paper(
    *,
    checkpoints: tuple[str, ...] = DEPTH_PAPER_CHECKPOINTS,
    n_test: Annotated[int, Interval(ge=1)] = 16,
    n_iter: Annotated[int, Interval(ge=1)] = 32,
    level: float = -1.0,
    seeds: tuple[int, ...] = (0, 1, 2),
) -> Figure:
    """The paper's depth panels: log₁₀ NC1 of Hˡ across the layers of GNNs with and without
    the self weight W₁, at our SBM density and at the paper code's effective density
    1 − (1 − p)², against the spectral methods per power iteration on the same graphs.

    Checkpoints are grouped into one panel per data density (p, q); per seed each panel draws
    ``n_test`` fresh test graphs from the first checkpoint's data config (all checkpoints of a
    panel see the same graphs). Curves: mean over seeds of the per-seed mean over graphs of
    log₁₀ NC1, band min–max over seeds; the dotted line is ``level`` (−1, NC1 = 0.1) and the
    legend gives the first layer whose seed-mean falls below it.
    """
    models = {name: load(name) for name in checkpoints}
    panels: dict[tuple[float, float], list[str]] = {}
    for name, model in models.items():
        data = model.zoo_data_config
        panels.setdefault((data["p"], data["q"]), []).append(name)
    fig, axes = new_figure(1, len(panels), figsize=(6.2 * len(panels), 4.6), sharey=True)
    axes = list(axes) if len(panels) > 1 else [axes]
    colors = ["tab:blue", "tab:orange", "tab:cyan", "tab:brown"]
    for ax, ((p, q), names) in zip(axes, panels.items()):
        runs: dict[str, list[Tensor]] = {k: [] for k in [*names, *_POWER_METHODS]}
        for seed in seeds:
            graphs = create_datamodule(models[names[0]], seed=seed, n_test=n_test).split("test")
            for name in names:
                runs[name].append(_mean_log10(_layer_nc1(models[name], graphs, "h")))
            for op in _POWER_METHODS:
                nc1, _ = _spectral_runs(graphs, models[name].hparams.n_classes, op, n_iter, seed)
                runs[op].append(_mean_log10(nc1))
        for i, name in enumerate(names):
            curve = torch.stack(runs[name])
            mean_curve = curve.mean(0)
            below = (mean_curve < level).nonzero()
            first = f"first ℓ below {level:g}: {int(below[0])}" if len(below) else "never below"
            w1 = "with W₁" if models[name].hparams.self_weight else "no W₁"
            label = f"{name} ({w1}; {first})"
            xs = list(range(curve.shape[1]))
            plot_seeds(ax, xs, curve, "o-", color=colors[i % 4], ms=3, label=label)
            log.info("gnn_nc_depth_paper %s: mean log10 NC1 per layer %s", name, _fmt(mean_curve))
        for op, (label, color) in _POWER_METHODS.items():
            curve = torch.stack(runs[op])
            plot_seeds(ax, list(range(n_iter + 1)), curve, "--", color=color, label=label)
            log.info("gnn_nc_depth_paper %s p=%g: per iteration %s", op, p, _fmt(curve.mean(0)))
        ax.axhline(level, color="k", ls=":", lw=0.8)
        paper = math.isclose(p, PAPER_DENSITY["p"]) and math.isclose(q, PAPER_DENSITY["q"])
        density = "the paper code's graphs: 1−(1−p)² of 0.025, 0.0017" if paper else "our SBM"
        n_nodes = models[names[0]].zoo_data_config["n_nodes"]
        ax.set_title(f"N={n_nodes}, C=2, p={p:.4g}, q={q:.4g} ({density})", fontsize=9)
        ax.set_xlabel(r"GNN layer $\ell$  /  power iteration $t$")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel(r"mean over graphs of $\log_{10}$ NC1 of $H^\ell$")
    budgets = sorted({int(m.zoo_data_config.get("n_train", 0)) for m in models.values()})
    fig.suptitle(
        f"shipped checkpoints (each trained once: {', '.join(map(str, budgets))} graphs × 8 "
        f"epochs, one graph per SGD step; see their cards); {n_test} fresh test graphs per seed "
        f"and panel, {seeds_note(seeds)}; spectral methods {n_iter} steps on the same graphs",
        fontsize=8,
    )
    return fig


@register_figure("gufm_regular")
def gufm_regular(
    *,
    n_nodes: Annotated[int, Interval(ge=10)] = 200,
    a: Annotated[float, Interval(ge=0)] = 25.0,
    b: Annotated[float, Interval(ge=0)] = 1.7,
    n_graphs: Annotated[int, Interval(ge=1)] = 4,
    width: Annotated[int, Interval(ge=1)] = 8,
    self_weight: bool = False,
    steps: Annotated[int, Interval(ge=1)] = 10000,
    lr: Annotated[float, Interval(gt=0)] = 0.1,
    lambda_w: Annotated[float, Interval(ge=0)] = 5e-3,
    lambda_h: Annotated[float, Interval(ge=0)] = 5e-3,
    log_every: Annotated[int, Interval(ge=1)] = 250,
    seeds: tuple[int, ...] = (0, 1, 2),
) -> Figure:
    """gUFM on regular vs ordinary SBM graphs: exact collapse is reached only on regular ones.

    Per seed, ``n_graphs`` SBM graphs (p = a/N, q = b/N) and ``n_graphs`` regular SBM graphs
    with the nearest integer degrees (:func:`zoo.graphs.data.regular_sbm_degrees`) are drawn,
    and the gUFM objective is minimised on each set by full-batch gradient descent
    (:func:`zoo.graphs.gufm.fit_gufm`). Left: mean over the graphs of log₁₀ NC1 of H and ÂH
    against the step; right: the orthogonal-frame distances of the class means of ÂH, of W₂
    and of the output's class means, and W₂'s alignment with the means of ÂH. Curves: mean
    over seeds of the per-seed mean over graphs of log₁₀, band min–max over seeds.
    """
    from zoo.graphs.gufm import fit_gufm

    kinds = {"regular": "regular SBM", "sbm": "SBM"}
    traces: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
    for seed in seeds:
        for kind in kinds:
            dm = create_datamodule(
                {"name": "sbm" if kind == "sbm" else "sbm_regular"}, seed=seed,
                n_train=n_graphs, n_val=1, n_test=1, **_sbm_kwargs(n_nodes, a, b),
            )  # fmt: skip
            gen = torch.Generator().manual_seed(seed)
            traces[kind].append(
                fit_gufm(
                    dm.split("train"), 2, width=width, self_weight=self_weight, lr=lr,
                    steps=steps, lambda_w=lambda_w, lambda_h=lambda_h, log_every=log_every,
                    generator=gen,
                )
            )  # fmt: skip
    steps_x = traces["regular"][0]["steps"]

    def runs(kind: str, key: str) -> Tensor:
        return torch.stack([_mean_log10(torch.stack(t[key])) for t in traces[kind]])

    fig, (ax, ax2) = new_figure(1, 2, figsize=(12, 4.6))
    styles = {"regular": "-", "sbm": "--"}
    for kind, label in kinds.items():
        for key, color, what in (("nc1_h", "tab:blue", "H"), ("nc1_ah", "tab:purple", "ÂH")):
            r = runs(kind, key)
            plot_seeds(
                ax, steps_x, r, styles[kind], color=color,
                label=f"NC1 of {what}, {label} (end {float(r[:, -1].mean()):.2f})",
            )  # fmt: skip
            log.info("gufm_regular %s %s: %s", kind, key, _fmt(r.mean(0)))
        for key, color, what in (
            ("nc2_of_ah", "tab:green", "NC2_OF means of ÂH"),
            ("nc2_of_w2", "tab:red", "NC2_OF W₂"),
            ("nc3_w2", "tab:orange", "NC3 W₂ vs means of ÂH"),
            ("nc2_of_out", "tab:gray", "NC2_OF output means"),
        ):
            r = runs(kind, key)
            plot_seeds(
                ax2, steps_x, r, styles[kind], color=color,
                label=f"{what}, {label} (end {float(r[:, -1].mean()):.2f})",
            )  # fmt: skip
            log.info("gufm_regular %s %s: %s", kind, key, _fmt(r.mean(0)))
    ax.set_ylabel(r"mean over graphs of $\log_{10}$ NC1")
    ax2.set_ylabel(r"mean over graphs of $\log_{10}$ distance")
    for axis in (ax, ax2):
        axis.set_xlabel("gradient-descent step")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    d_in, d_out = regular_sbm_degrees(n_nodes // 2, a / n_nodes, b / n_nodes)
    fig.suptitle(
        f"gUFM ({'with' if self_weight else 'no'} W₁, width {width}), {n_graphs} graphs of "
        f"N={n_nodes}, C=2 per seed: SBM a={a:g}, b={b:g} (dashed) vs regular SBM with degrees "
        f"{d_in} within / {d_out} across (solid); full-batch GD, {steps} steps of lr {lr:g}, "
        f"λ_W = {lambda_w:g}, λ_H = {lambda_h:g}; {seeds_note(seeds)}",
        fontsize=8,
    )
    return fig


@register_figure("gnn_nc_heterophilic")
def gnn_nc_heterophilic(
    *,
    models: tuple[str, ...] = ("gnn_nc", "gnn_nc_noself"),
    n_nodes: Annotated[int, Interval(ge=10)] = 1000,
    a: Annotated[float, Interval(ge=0)] = 25.0,
    b: Annotated[float, Interval(ge=0)] = 1.7,
    n_train: Annotated[int, Interval(ge=1)] = 64,
    n_test: Annotated[int, Interval(ge=1)] = 16,
    epochs: Annotated[int, Interval(ge=1)] = 4,
    depth: Annotated[int, Interval(ge=1)] = 32,
    seeds: tuple[int, ...] = (0, 1, 2),
) -> Figure:
    """log₁₀ NC1 of Hˡ across depth on homophilic (p inside, q across communities) and
    heterophilic (p ↔ q) SBM graphs, for GNNs with and without the self weight.

    Per seed and graph kind each model in ``models`` is trained for ``epochs`` on ``n_train``
    graphs (p = a/N, q = b/N, swapped when heterophilic) and measured on ``n_test`` held-out
    graphs. Curves: mean over seeds of the per-seed mean over graphs of log₁₀ NC1, band
    min–max over seeds; the legend gives the held-out overlap (mean over seeds).
    """
    kinds = {False: "homophilic", True: "heterophilic"}
    curves: dict[tuple[str, bool], list[Tensor]] = {}
    overlaps: dict[tuple[str, bool], list[float]] = {}
    for seed in seeds:
        for het in kinds:
            dm = create_datamodule(
                "gnn_nc", seed=seed, heterophilic=het, n_train=n_train, n_val=1, n_test=n_test,
                batch_size=1, **_sbm_kwargs(n_nodes, a, b),
            )  # fmt: skip
            graphs = dm.split("test")
            for name in models:
                trained = _train_gnn(dm, depth, epochs, seed, name=name)
                curves.setdefault((name, het), []).append(_mean_log10(_layer_nc1(trained, graphs)))
                ov = float(_gnn_overlap(trained, graphs).mean())
                overlaps.setdefault((name, het), []).append(ov)
                log.info("gnn_nc_heterophilic seed=%d %s het=%s: overlap %.4f", seed, name, het, ov)
    fig, ax = new_figure(figsize=(7, 4.6))
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:red"]
    for i, name in enumerate(models):
        for het, kind in kinds.items():
            runs = torch.stack(curves[(name, het)])
            ov = sum(overlaps[(name, het)]) / len(seeds)
            plot_seeds(
                ax, list(range(runs.shape[1])), runs, "--" if het else "o-", ms=3,
                color=colors[i % 4], label=f"{name}, {kind} (overlap {ov:.3f})",
            )  # fmt: skip
            log.info("gnn_nc_heterophilic %s %s: %s", name, kind, _fmt(runs.mean(0)))
    ax.set_xlabel(r"GNN layer $\ell$")
    ax.set_ylabel(r"mean over graphs of $\log_{10}$ NC1 of $H^\ell$")
    ax.set_title(
        f"SBM N={n_nodes}, C=2, a={a:g}, b={b:g}; heterophilic: a ↔ b; each model trained per "
        f"seed and kind: {epochs} epochs × {n_train} graphs = {epochs * n_train} SGD steps\n"
        f"{n_test} held-out graphs per seed; {seeds_note(seeds)}",
        fontsize=8,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def _instance_wise(graphs: list[Any], separation: float) -> None:
    """Make every graph of ``graphs`` (in place) an instance-wise classification sample set.

    Drops all edges, so ``gnn_nc``'s layers act on each node alone (Hˡ⁺¹ = norm(ReLU(Hˡ W₁)):
    the mean aggregation of a node without neighbours is 0), and adds ``separation`` × the
    one-hot class vector (first C input coordinates) to the node's noise features (N, F).
    """
    from torch_geometric.data import Data

    for i, g in enumerate(graphs):
        shift = torch.zeros_like(g.x)
        shift[torch.arange(g.num_nodes, device=g.x.device), g.y] = separation
        empty = torch.zeros(2, 0, dtype=g.edge_index.dtype, device=g.edge_index.device)
        graphs[i] = Data(x=g.x + shift, edge_index=empty, y=g.y, num_nodes=g.num_nodes)


_PARTIAL_SETTINGS = {
    "nodewise": ("node-wise: SBM graphs", "tab:blue"),
    "instancewise": ("instance-wise: edges dropped, class in the input", "tab:red"),
}


@register_figure("gnn_nc_partial_collapse")
def gnn_nc_partial_collapse(
    *,
    n_nodes: Annotated[int, Interval(ge=10)] = 1000,
    a: Annotated[float, Interval(ge=0)] = 25.0,
    b: Annotated[float, Interval(ge=0)] = 1.7,
    separation: Annotated[float, Interval(gt=0)] = 8.0,
    n_train: Annotated[int, Interval(ge=1)] = 64,
    n_probe: Annotated[int, Interval(ge=1)] = 8,
    epochs: Annotated[int, Interval(ge=1)] = 8,
    depths: tuple[Annotated[int, Interval(ge=1)], ...] = (8, 32),
    every_n_steps: Annotated[int, Interval(ge=1)] = 16,
    seeds: tuple[int, ...] = (0, 1, 2),
) -> Figure:
    """Training-graph NC1 of Hᴸ during training: node-wise (partial collapse) vs instance-wise.

    Kothapalli et al. contrast node-wise classification by a GNN, whose training NC1
    decreases but plateaus, with instance-wise deep classifiers (each sample classified from
    its own input), whose NC1 goes much lower. Per depth (one panel each), seed and setting,
    ``gnn_nc`` (with W₁, BatchNorm; width 8, SGD lr 4e-3, one graph per step) is trained
    ``epochs`` on ``n_train`` graphs and NC1 of Hᴸ is measured every ``every_n_steps`` steps
    on ``n_probe`` of its training graphs (eval mode). ``"nodewise"``: SBM graphs
    (p = a/N, q = b/N) with noise inputs; ``"instancewise"``: the same graphs with their
    edges dropped and ``separation`` × one-hot(class) added to the noise inputs
    (:func:`_instance_wise`), so that each node is an independent, (for large ``separation``)
    separable sample. Curves: mean over seeds of the per-seed mean over the probe graphs of
    log₁₀ NC1, band min–max over seeds; the legend gives the last value and the held-out
    overlap on ``n_probe`` test graphs of the same setting.
    """
    if not depths:
        raise ValueError("depths must name at least one depth")
    sizes = {"n_train": n_train, "n_val": 1, "n_test": n_probe, "batch_size": 1}
    fig, axes = new_figure(1, len(depths), figsize=(6 * len(depths), 4.6), squeeze=False)
    for ax, depth in zip(axes[0], depths):
        runs: dict[str, list[Tensor]] = {s: [] for s in _PARTIAL_SETTINGS}  # per seed: (T,)
        overlaps: dict[str, list[float]] = {s: [] for s in _PARTIAL_SETTINGS}
        for seed in seeds:
            for setting in _PARTIAL_SETTINGS:
                dm = _sbm_datamodule(seed, n_nodes, a, b, **sizes)
                if setting == "instancewise":
                    for split in ("train", "val", "test"):
                        _instance_wise(dm.split(split), separation)
                probe = _probe(dm.split("train")[:n_probe], dm.split("test"))
                trace = StepTrace(probe, every_n_steps)
                _train_gnn(dm, depth, epochs, seed, callbacks=(trace,))
                runs[setting].append(_mean_log10(torch.stack([v["train"] for v in trace.values])))
                overlaps[setting].append(trace.values[-1]["overlap"])
        steps = trace.steps
        for setting, (label, color) in _PARTIAL_SETTINGS.items():
            r = torch.stack(runs[setting])  # (seeds, T)
            ov = sum(overlaps[setting]) / len(seeds)
            plot_seeds(
                ax, steps, r, ".-", color=color,
                label=f"{label}: step {steps[-1]} {float(r[:, -1].mean()):.2f}, overlap {ov:.3f}",
            )  # fmt: skip
            log.info(
                "gnn_nc_partial_collapse depth %d %s: mean log10 NC1 (train) per step %s; last"
                " per seed %s; held-out overlap per seed %s",
                depth, setting, _fmt(r.mean(0)), _fmt(r[:, -1]),
                _fmt(torch.tensor(overlaps[setting])),
            )  # fmt: skip
        for e in range(1, epochs):
            ax.axvline(e * n_train, color="0.85", lw=0.8, zorder=0)
        ax.set_xlabel(f"SGD step (one graph per step; grey lines = epochs of {n_train} graphs)")
        ax.set_title(f"{_budget(depth, epochs, n_train)}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel(r"mean over training graphs of $\log_{10}$ NC1 of $H^L$")
    fig.suptitle(
        f"per depth, seed and setting; SBM N={n_nodes}, a={a:g}, b={b:g}; instance-wise: the "
        f"same graphs without edges, inputs noise + {separation:g}·one-hot(class); NC1 on "
        f"{n_probe} training graphs; {seeds_note(seeds)}",
        fontsize=8,
    )
    return fig
