"""The paper's neural-collapse findings on SBM graphs as figures (SPEC §3).

Registered with :func:`zoo.core.figures.register_figure`, run with
``python recipes/reproduce.py fig=<name> [fig.<param>=...]`` (PNGs into ``docs/figures/``):

- ``gnn_nc_training``: NC1 of the last-layer features on training and held-out graphs
  during training of ``gnn_nc`` — it drops, then plateaus well above 0 (partial collapse).
- ``gnn_nc_depth``: log₁₀ NC1 across the layers of a trained ``gnn_nc`` (features Hˡ and
  aggregated features ÂHˡ) against the spectral methods across power iterations
  (normalised Laplacian, Bethe Hessian), on the same held-out graphs.
- ``gnn_nc_threshold``: test overlap against a − b at fixed a + b (p = a/N, q = b/N) for
  ``gnn_nc`` and the spectral methods, with the detectability threshold
  (a − b)² = C (a + (C − 1) b) marked.

NC values are per graph (each graph's communities are its own classes). Lines are the
median over graphs and shaded bands the 25–75 % quantiles: the per-graph NC1 is heavy
tailed (one graph whose communities are not yet separated has a near-singular Σ_B), so
its mean — what the models log — is dominated by single graphs; the logged messages give
the means too.
Everything runs on the CPU with the defaults in a few minutes (2 cores).
"""

from __future__ import annotations

import logging
import math
import tempfile
from pathlib import Path
from typing import Annotated, Any

import pytorch_lightning as pl
import torch
from torch import Tensor

from zoo.core.config import Interval
from zoo.core.figures import register_figure
from zoo.graphs.collapse import class_statistics, nc_from_statistics, overlap
from zoo.graphs.spectral import power_iterations, predict

__all__ = ["gnn_nc_depth", "gnn_nc_threshold", "gnn_nc_training", "per_graph_nc1"]

log = logging.getLogger(__name__)

_SPECTRAL_STYLE = {
    "laplacian": ("normalised Laplacian", "tab:green"),
    "bethe_hessian": ("Bethe Hessian", "tab:red"),
}


# -- helpers ------------------------------------------------------------------------------
def per_graph_nc1(
    features: Tensor, labels: Tensor, num_classes: int, batch: Tensor | None
) -> Tensor:
    """NC1 of every graph: features (N, F), labels (N,), batch (N,) → (G,) float64."""
    return nc_from_statistics(*class_statistics(features, labels, num_classes, batch))["nc1"]


def _trainer(
    epochs: int, root: str, callbacks: list[pl.Callback] | None = None, **kw: Any
) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=root,
        callbacks=callbacks or [],
        **kw,
    )


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


def _fmt(v: Tensor) -> str:
    return "[" + ", ".join(f"{float(x):.3g}" for x in v) + "]"


def _save(fig: Any, out_dir: Path, name: str) -> Path:
    import matplotlib.pyplot as plt

    path = Path(out_dir) / f"{name}.png"
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return path


class _NCTrace(pl.Callback):
    """Every ``every`` optimiser steps: last-layer NC1 per probe graph (train and held out)."""

    def __init__(self, train_graphs: list[Any], test_graphs: list[Any], every: int) -> None:
        self.graphs = {"train": train_graphs, "test": test_graphs}
        self.every = every
        self.steps: list[int] = []
        self.nc1: dict[str, list[Tensor]] = {"train": [], "test": []}
        self.overlap: list[float] = []

    def _record(self, module: Any, step: int) -> None:
        c = module.hparams.n_classes
        self.steps.append(step)
        for split, graphs in self.graphs.items():
            outs = _forward_graphs(module, graphs)
            self.nc1[split].append(
                torch.stack(
                    [per_graph_nc1(f["h"][-1], g.y, c, None)[0] for g, (_, f) in zip(graphs, outs)]
                )
            )
            if split == "test":
                ov = [overlap(lg.argmax(1), g.y, c)[0] for g, (lg, _) in zip(graphs, outs)]
                self.overlap.append(float(torch.stack(ov).mean()))

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._record(pl_module, 0)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any
    ) -> None:
        if trainer.global_step % self.every == 0:
            self._record(pl_module, trainer.global_step)


def _sbm_datamodule(model_name: str, seed: int, **data_kwargs: Any) -> Any:
    import zoo

    return zoo.create_datamodule(model_name, seed=seed, **data_kwargs)


def _train_gnn(
    model_name: str,
    dm: Any,
    model_kwargs: dict[str, Any],
    epochs: int,
    seed: int,
    callbacks: list[pl.Callback] | None = None,
    validate: bool = False,
) -> Any:
    """Train ``model_name`` on datamodule ``dm`` with a Lightning ``Trainer``; eval-mode model."""
    import zoo

    pl.seed_everything(seed, workers=True, verbose=False)
    model = zoo.create(model_name, **model_kwargs)
    model.zoo_data_config = dm.config
    with tempfile.TemporaryDirectory() as root:
        kw = {} if validate else {"limit_val_batches": 0}
        _trainer(epochs, root, callbacks, **kw).fit(model, datamodule=dm)
    model.eval()
    return model


# -- figures ------------------------------------------------------------------------------
@register_figure("gnn_nc_training")
def gnn_nc_training(
    out_dir: Path,
    *,
    n_nodes: Annotated[int, Interval(ge=10)] = 1000,
    a: Annotated[float, Interval(ge=0)] = 25.0,
    b: Annotated[float, Interval(ge=0)] = 1.7,
    n_train: Annotated[int, Interval(ge=1)] = 64,
    n_probe: Annotated[int, Interval(ge=1)] = 8,
    epochs: Annotated[int, Interval(ge=1)] = 8,
    depth: Annotated[int, Interval(ge=1)] = 32,
    every_n_steps: Annotated[int, Interval(ge=1)] = 8,
    seed: int = 0,
) -> list[Path]:
    """NC1 of the last-layer features Hᴸ during training of ``gnn_nc``.

    Trains ``gnn_nc`` (paper defaults: width 8, SGD lr 4e-3, one graph per step) on
    ``n_train`` SBM graphs (p = a/N, q = b/N) and every ``every_n_steps`` steps measures NC1
    of Hᴸ on ``n_probe`` training graphs and ``n_probe`` held-out test graphs (eval mode),
    plus the held-out overlap.
    """
    import matplotlib.pyplot as plt

    sizes = {"n_train": n_train, "n_val": 1, "n_test": n_probe, "batch_size": 1}
    dm = _sbm_datamodule("gnn_nc", seed, **_sbm_kwargs(n_nodes, a, b), **sizes)
    trace = _NCTrace(dm.split("train")[:n_probe], dm.split("test"), every_n_steps)
    _train_gnn("gnn_nc", dm, {"depth": depth, "track_collapse": False}, epochs, seed, [trace])

    steps = trace.steps
    med0 = {k: float(torch.stack(v)[0].median()) for k, v in trace.nc1.items()}
    med1 = {k: float(torch.stack(v)[-1].median()) for k, v in trace.nc1.items()}
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(6, 5.5), sharex=True, height_ratios=[3, 1.3])
    _band(ax, steps, torch.stack(trace.nc1["train"]), "training graphs", "tab:blue", marker=".")
    _band(ax, steps, torch.stack(trace.nc1["test"]), "held-out graphs", "tab:orange", marker=".")
    for e in range(1, epochs):
        ax.axvline(e * n_train, color="0.85", lw=0.8, zorder=0)
        ax2.axvline(e * n_train, color="0.85", lw=0.8, zorder=0)
    ax.set_ylabel(r"$\log_{10}$ NC1 of $H^L$")
    ax.set_title(
        f"gnn_nc (depth {depth}) on SBM N={n_nodes}, a={a:g}, b={b:g}: NC1 during training"
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    ax.text(
        0.3, 0.45,
        f"median NC1 of $H^L$, train / held out: step 0 {med0['train']:.3g} / {med0['test']:.3g}"
        f"\nstep {steps[-1]}: {med1['train']:.3g} / {med1['test']:.3g};"
        f" held-out overlap {trace.overlap[-1]:.4f}",
        transform=ax.transAxes, fontsize=8, va="bottom",
        bbox={"facecolor": "white", "alpha": 0.8, "lw": 0},
    )  # fmt: skip
    ax2.plot(steps, trace.overlap, color="tab:orange", marker=".")
    ax2.set_ylabel("held-out\noverlap")
    ax2.set_xlabel(f"SGD step (one graph per step; grey lines = epochs of {n_train} graphs)")
    ax2.grid(alpha=0.3)
    final = [float(torch.stack(trace.nc1[s])[-1].mean()) for s in ("train", "test")]
    log.info(
        "gnn_nc_training: NC1 start %.3g, end train %.3g / test %.3g",
        float(trace.nc1["train"][0].mean()),
        *final,
    )
    return [_save(fig, out_dir, "gnn_nc_training")]


@register_figure("gnn_nc_depth")
def gnn_nc_depth(
    out_dir: Path,
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
    seed: int = 0,
) -> list[Path]:
    """log₁₀ NC1 across the layers of a trained GNN vs across spectral power iterations.

    The GNN is ``zoo.load(checkpoint)`` when ``checkpoint`` is given (a registered name
    such as ``"gnn_nc"``, a directory or an ``hf-hub:`` id; its test graphs are regenerated
    with ``seed``), else ``gnn_nc`` trained here for ``epochs`` on ``n_train`` graphs. NC1
    is measured on ``n_test`` held-out graphs for Hˡ and ÂHˡ, ℓ = 0..L, and for the
    embeddings of ``n_iter`` steps of the two spectral methods on the same graphs.
    """
    import matplotlib.pyplot as plt

    import zoo

    if checkpoint:
        model = zoo.load(checkpoint)
        dm = zoo.create_datamodule(model, seed=seed, n_test=n_test)
        title = f"checkpoint {checkpoint} (depth {model.hparams.depth}), test graphs regenerated"
    else:
        sizes = {"n_train": n_train, "n_val": 1, "n_test": n_test, "batch_size": 1}
        dm = _sbm_datamodule("gnn_nc", seed, **_sbm_kwargs(n_nodes, a, b), **sizes)
        model = _train_gnn("gnn_nc", dm, {"depth": depth, "track_collapse": False}, epochs, seed)
        title = f"gnn_nc depth {depth}, {epochs} epochs on {n_train} graphs"
    graphs = dm.split("test")
    c = model.hparams.n_classes
    hp = dm.hparams
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for kind, label, color in (
        ("h", r"GNN $H^\ell$", "tab:blue"),
        ("ah", r"GNN $\hat A H^\ell$", "tab:purple"),
    ):
        vals = _layer_nc1(model, graphs, kind)
        label = f"{label} (NC1 at ℓ={vals.shape[0] - 1}: {float(vals[-1].median()):.3g})"
        _band(ax, list(range(vals.shape[0])), vals, label, color, marker="o", ms=3)
        log.info("gnn_nc_depth %s: median NC1 per layer %s", kind, _fmt(vals.median(1).values))
        log.info("gnn_nc_depth %s: mean NC1 per layer %s", kind, _fmt(vals.mean(1)))
    for op, (label, color) in _SPECTRAL_STYLE.items():
        vals, ov = _spectral_runs(graphs, c, op, n_iter, seed)
        med = float(vals[-1].median())
        label = f"{label} (NC1 at t={n_iter}: {med:.3g}; overlap {float(ov.mean()):.3f})"
        _band(ax, list(range(n_iter + 1)), vals, label, color, ls="--")
        log.info("gnn_nc_depth %s: median NC1 per iteration %s", op, _fmt(vals.median(1).values))
        log.info("gnn_nc_depth %s: overlap %.4f", op, float(ov.mean()))
    ax.set_xlabel(r"GNN layer $\ell$  /  power iteration $t$")
    ax.set_ylabel(r"$\log_{10}$ NC1 (held-out graphs)")
    ax.set_title(
        f"{title}\nSBM N={hp.n_nodes}, C={hp.n_classes}, p={hp.p:.3g}, q={hp.q:.3g}, "
        f"{len(graphs)} test graphs",
        fontsize=9,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return [_save(fig, out_dir, "gnn_nc_depth")]


@register_figure("gnn_nc_threshold")
def gnn_nc_threshold(
    out_dir: Path,
    *,
    n_nodes: Annotated[int, Interval(ge=10)] = 1000,
    a_plus_b: Annotated[float, Interval(gt=0)] = 20.0,
    a_minus_b: list[float] = [0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0, 16.0, 18.0],  # noqa: B006
    n_train: Annotated[int, Interval(ge=1)] = 64,
    n_test: Annotated[int, Interval(ge=1)] = 16,
    epochs: Annotated[int, Interval(ge=1)] = 3,
    depth: Annotated[int, Interval(ge=1)] = 16,
    n_iter: Annotated[int, Interval(ge=1)] = 64,
    seed: int = 0,
) -> list[Path]:
    """Held-out overlap vs a − b at fixed a + b (C = 2), GNN and spectral methods.

    For every a − b, ``gnn_nc`` is trained for ``epochs`` on ``n_train`` graphs and tested on
    ``n_test`` held-out graphs; the spectral methods run ``n_iter`` power steps on the same
    test graphs. The detectability threshold (a − b)² = 2(a + b) is drawn as a vertical line.
    Keep b > 0 (a − b < a + b): with b = 0 the graph splits into its two communities and the
    Bethe Hessian's two lowest eigenvalues coincide, so its Ritz vectors are arbitrary.
    """
    import matplotlib.pyplot as plt

    c = 2
    results: dict[str, list[float]] = {"gnn": [], "laplacian": [], "bethe_hessian": []}
    for diff in a_minus_b:
        if not 0 <= diff <= a_plus_b:
            raise ValueError(f"a_minus_b={diff} must lie in [0, a_plus_b={a_plus_b}]")
        a, b = (a_plus_b + diff) / 2, (a_plus_b - diff) / 2
        sizes = {"n_train": n_train, "n_val": 1, "n_test": n_test, "batch_size": 1}
        dm = _sbm_datamodule("gnn_nc", seed, **_sbm_kwargs(n_nodes, a, b), **sizes)
        model = _train_gnn("gnn_nc", dm, {"depth": depth, "track_collapse": False}, epochs, seed)
        graphs = dm.split("test")
        results["gnn"].append(float(_gnn_overlap(model, graphs).mean()))
        for op in _SPECTRAL_STYLE:
            _, ov = _spectral_runs(graphs, c, op, n_iter, seed)
            results[op].append(float(ov.mean()))
        log.info("gnn_nc_threshold a-b=%g: %s", diff, {k: v[-1] for k, v in results.items()})
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(
        a_minus_b,
        results["gnn"],
        marker="o",
        color="tab:blue",
        label=f"gnn_nc (depth {depth}, {epochs} epochs)",
    )
    for x, y in zip(a_minus_b, results["gnn"]):
        kw = {"textcoords": "offset points", "fontsize": 7, "ha": "center"}
        ax.annotate(f"{y:.2f}", (x, y), xytext=(0, 6), color="tab:blue", **kw)
    for op, (label, color) in _SPECTRAL_STYLE.items():
        ax.plot(
            a_minus_b,
            results[op],
            marker="s",
            ls="--",
            color=color,
            label=f"{label} ({n_iter} steps)",
        )
    thr = math.sqrt(c * a_plus_b)  # (a − b)² = C(a + (C − 1) b) = C(a + b) for C = 2
    ax.axvline(thr, color="k", ls=":", label=f"threshold (a−b)²=2(a+b): a−b={thr:.2f}")
    ax.set_xlabel("a − b")
    ax.set_ylabel("held-out overlap")
    ax.set_title(f"SBM N={n_nodes}, C=2, a+b={a_plus_b:g}, {n_test} test graphs", fontsize=10)
    ax.set_ylim(-0.05, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return [_save(fig, out_dir, "gnn_nc_threshold")]
