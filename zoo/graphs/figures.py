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

NC values are per graph (each graph's communities are its own classes). NC lines are the
median over graphs and shaded bands the 25–75 % quantiles: the per-graph NC1 is heavy
tailed (one graph whose communities are not yet separated has a near-singular Σ_B), so
its mean — what the models log — is dominated by single graphs; the logged messages give
the means too. With several ``seeds`` the graphs of all seeds are pooled into these
quantiles; overlap curves (one number per run) show the mean over seeds with a min–max band.
GNNs train with :func:`zoo.core.figures.quick_fit`. Everything runs on the CPU with the
defaults in a few minutes (2 cores).
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
from zoo.graphs.spectral import power_iterations, predict

__all__ = ["gnn_nc_depth", "gnn_nc_threshold", "gnn_nc_training", "per_graph_nc1"]

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


def _band(
    ax: Any, x: list[float] | Tensor, vals: Tensor, label: str, color: str, **kw: Any
) -> None:
    """Plot log10 of the median over graphs (dim 1) with a 25–75 % quantile band."""
    v = vals.double()
    ax.plot(x, torch.quantile(v, 0.5, dim=1).log10(), label=label, color=color, **kw)
    lo, hi = torch.quantile(v, 0.25, dim=1).log10(), torch.quantile(v, 0.75, dim=1).log10()
    ax.fill_between(x, lo, hi, color=color, alpha=0.15, lw=0)


def _pooled_note(seeds: Sequence[int], n: int, what: str) -> str:
    """``"median of 16 test graphs (seed 0), band 25–75 %"`` (graphs of all seeds pooled)."""
    who = f"seed {seeds[0]}" if len(seeds) == 1 else f"{len(seeds)} seeds × {n}"
    return f"median of {len(seeds) * n} {what} ({who}), band 25–75 %"


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
    dm: Any, depth: int, epochs: int, seed: int, callbacks: Sequence[pl.Callback] = ()
) -> Any:
    """``gnn_nc`` of ``depth`` trained ``epochs`` on ``dm`` (paper optimiser); eval mode."""
    seed_everything(seed)
    model = create("gnn_nc", depth=depth, track_collapse=False)
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
    seeds: tuple[int, ...] = (0,),
) -> Figure:
    """NC1 of the last-layer features Hᴸ during training of ``gnn_nc``.

    Trains ``gnn_nc`` (paper defaults: width 8, SGD lr 4e-3, one graph per step) on
    ``n_train`` SBM graphs (p = a/N, q = b/N) per seed and every ``every_n_steps`` steps
    measures NC1 of Hᴸ on ``n_probe`` training graphs and ``n_probe`` held-out test graphs
    (eval mode), plus the held-out overlap.
    """
    sizes = {"n_train": n_train, "n_val": 1, "n_test": n_probe, "batch_size": 1}
    nc1: dict[str, list[Tensor]] = {"train": [], "test": []}  # per seed: (T, G)
    overlaps = []  # per seed: (T,)
    for seed in seeds:
        dm = _sbm_datamodule(seed, n_nodes, a, b, **sizes)
        trace = StepTrace(_probe(dm.split("train")[:n_probe], dm.split("test")), every_n_steps)
        _train_gnn(dm, depth, epochs, seed, callbacks=(trace,))
        for split in nc1:
            nc1[split].append(torch.stack([v[split] for v in trace.values]))
        overlaps.append([v["overlap"] for v in trace.values])
    steps = trace.steps
    pooled = {k: torch.cat(v, 1) for k, v in nc1.items()}  # (T, seeds × G)
    med0 = {k: float(v[0].median()) for k, v in pooled.items()}
    med1 = {k: float(v[-1].median()) for k, v in pooled.items()}
    final_overlap = sum(o[-1] for o in overlaps) / len(overlaps)
    fig, (ax, ax2) = new_figure(2, 1, figsize=(6, 5.5), sharex=True, height_ratios=[3, 1.3])
    _band(ax, steps, pooled["train"], "training graphs", "tab:blue", marker=".")
    _band(ax, steps, pooled["test"], "held-out graphs", "tab:orange", marker=".")
    for e in range(1, epochs):
        ax.axvline(e * n_train, color="0.85", lw=0.8, zorder=0)
        ax2.axvline(e * n_train, color="0.85", lw=0.8, zorder=0)
    ax.set_ylabel(r"$\log_{10}$ NC1 of $H^L$")
    ax.set_title(
        f"gnn_nc (depth {depth}) on SBM N={n_nodes}, a={a:g}, b={b:g}: NC1 during training\n"
        f"{_pooled_note(seeds, n_probe, 'graphs per curve')}",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    ax.text(
        0.3, 0.45,
        f"median NC1 of $H^L$, train / held out: step 0 {med0['train']:.3g} / {med0['test']:.3g}"
        f"\nstep {steps[-1]}: {med1['train']:.3g} / {med1['test']:.3g};"
        f" held-out overlap {final_overlap:.4f}",
        transform=ax.transAxes, fontsize=8, va="bottom",
        bbox={"facecolor": "white", "alpha": 0.8, "lw": 0},
    )  # fmt: skip
    plot_seeds(ax2, steps, overlaps, ".-", color="tab:orange")
    ax2.set_ylabel("held-out\noverlap")
    ax2.set_xlabel(f"SGD step (one graph per step; grey lines = epochs of {n_train} graphs)")
    if len(seeds) > 1:
        ax2.set_title(seeds_note(seeds), fontsize=8)
    ax2.grid(alpha=0.3)
    log.info(
        "gnn_nc_training: NC1 start %.3g, end train %.3g / test %.3g",
        float(pooled["train"][0].mean()),
        *(float(pooled[s][-1].mean()) for s in ("train", "test")),
    )
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
    seeds: tuple[int, ...] = (0,),
) -> Figure:
    """log₁₀ NC1 across the layers of a trained GNN vs across spectral power iterations.

    The GNN is ``load(checkpoint)`` when ``checkpoint`` is given (a registered name such as
    ``"gnn_nc"``, a directory or an ``hf-hub:`` id; its test graphs are regenerated with each
    seed), else ``gnn_nc`` trained here per seed for ``epochs`` on ``n_train`` graphs. NC1
    is measured on ``n_test`` held-out graphs per seed for Hˡ and ÂHˡ, ℓ = 0..L, and for the
    embeddings of ``n_iter`` steps of the two spectral methods on the same graphs.
    """
    sizes = {"n_train": n_train, "n_val": 1, "n_test": n_test, "batch_size": 1}
    kinds = {"h": r"GNN $H^\ell$", "ah": r"GNN $\hat A H^\ell$"}
    layer_nc1: dict[str, list[Tensor]] = {k: [] for k in kinds}
    power: dict[str, list[tuple[Tensor, Tensor]]] = {op: [] for op in _POWER_METHODS}
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
            layer_nc1[kind].append(_layer_nc1(trained, graphs, kind))
        for op in _POWER_METHODS:
            power[op].append(_spectral_runs(graphs, trained.hparams.n_classes, op, n_iter, seed))
    if model is not None:
        title = f"checkpoint {checkpoint} (depth {model.hparams.depth}), test graphs regenerated"
    else:
        title = f"gnn_nc depth {depth}, {epochs} epochs on {n_train} graphs"
    hp = dm.hparams
    fig, ax = new_figure(figsize=(6.5, 4.2))
    for kind, label in kinds.items():
        vals = torch.cat(layer_nc1[kind], 1)
        label = f"{label} (NC1 at ℓ={vals.shape[0] - 1}: {float(vals[-1].median()):.3g})"
        color = "tab:blue" if kind == "h" else "tab:purple"
        _band(ax, list(range(vals.shape[0])), vals, label, color, marker="o", ms=3)
        log.info("gnn_nc_depth %s: median NC1 per layer %s", kind, _fmt(vals.median(1).values))
        log.info("gnn_nc_depth %s: mean NC1 per layer %s", kind, _fmt(vals.mean(1)))
    for op, (label, color) in _POWER_METHODS.items():
        vals = torch.cat([v for v, _ in power[op]], 1)
        ov = torch.cat([o for _, o in power[op]])
        med = float(vals[-1].median())
        label = f"{label} (NC1 at t={n_iter}: {med:.3g}; overlap {float(ov.mean()):.3f})"
        _band(ax, list(range(n_iter + 1)), vals, label, color, ls="--")
        log.info("gnn_nc_depth %s: median NC1 per iteration %s", op, _fmt(vals.median(1).values))
        log.info("gnn_nc_depth %s: overlap %.4f", op, float(ov.mean()))
    ax.set_xlabel(r"GNN layer $\ell$  /  power iteration $t$")
    ax.set_ylabel(r"$\log_{10}$ NC1 (held-out graphs)")
    ax.set_title(
        f"{title}\nSBM N={hp.n_nodes}, C={hp.n_classes}, p={hp.p:.3g}, q={hp.q:.3g}, "
        f"{_pooled_note(seeds, len(graphs), 'test graphs')}",
        fontsize=9,
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
    seeds: tuple[int, ...] = (0,),
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
    label = f"gnn_nc (depth {depth}, {epochs} epochs)"
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
        f"SBM N={n_nodes}, C=2, a+b={a_plus_b:g}, {n_test} test graphs; {seeds_note(seeds)}",
        fontsize=10,
    )
    ax.set_ylim(-0.05, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig
