"""Figures of the ansatz family (``python recipes/reproduce.py fig=<name>``).

- ``ansatz_slater_vs_jastrow``: test nmse vs number of determinants K, Slater vs Jastrow,
  on the Calogero target Ψ_λ for λ ∈ {1, 1.5, 2.5}.
- ``ansatz_deepsets_vs_relnet``: test nmse vs width L, DeepSets vs Relation Net, on the
  pairwise energy Σ_{i<j} exp(β⟨x_i, x_j⟩) on the sphere, for several (D, N).
- ``sym_single_index``: overlap ⟨β, β*⟩ vs SGD step for links of information exponent 1–3.

Every run trains a registered model on the ``sets`` datamodule with
:func:`zoo.core.figures.quick_fit` (its own loss and optimiser; Adam with a per-step cosine
schedule for the two sweeps) and, for the sweeps, reports the test nmse
Σ(f − y)²/Σ(y − ȳ)² of :func:`zoo.core.figures.quick_test`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from matplotlib.figure import Figure

from zoo.ansatz.targets import link_function
from zoo.core.figures import (
    StepTrace,
    new_figure,
    plot_seeds,
    quick_fit,
    quick_test,
    register_figure,
    seed_everything,
    seeds_note,
)
from zoo.core.registry import create, create_datamodule

__all__ = ["deepsets_vs_relnet", "fit_and_test", "slater_vs_jastrow", "sym_single_index_overlap"]

log = logging.getLogger(__name__)


def fit_and_test(
    name: str, data: dict[str, Any], *, epochs: int, lr: float, seed: int, **hparams: Any
) -> float:
    """Test nmse of model ``name`` (``hparams``, Adam at ``lr`` with a per-step cosine
    schedule) after ``epochs`` on the ``sets`` data ``data`` drawn with ``seed``."""
    seed_everything(seed)
    model = create(name, lr=lr, optimizer="adam", scheduler="cosine", **hparams)
    dm = create_datamodule(model, seed=seed, **data)
    quick_fit(model, dm, max_epochs=epochs, seed=seed)
    return quick_test(model, dm)["test/nmse"]


def _log_axes(ax: Any, xs: Sequence[int], xlabel: str, title: str) -> None:
    from matplotlib.ticker import NullFormatter

    ax.set(xscale="log", yscale="log", xlabel=xlabel, title=title)
    ax.set_xticks(list(xs), [str(x) for x in xs])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.grid(alpha=0.3, which="both")


@register_figure("ansatz_slater_vs_jastrow")
def slater_vs_jastrow(
    *,
    lams: tuple[float, ...] = (1.0, 1.5, 2.5),
    dets: tuple[int, ...] = (1, 2, 4, 8),
    n_set: int = 4,
    n_basis: int = 12,
    n_train: int = 4096,
    epochs: int = 40,
    lr: float = 1e-2,
    seeds: tuple[int, ...] = (0,),
) -> Figure:
    """Test nmse vs K for ``slater`` and ``jastrow`` (Hermite orbitals) on Ψ_λ, N = n_set."""
    fig, axes = new_figure(1, len(lams), figsize=(4 * len(lams), 3.4), sharey=True, squeeze=False)
    for ax, lam in zip(axes[0], lams):
        data = {
            "target_params": {"lam": lam},
            "n_train": n_train,
            "n_val": 16,
            "n_test": 4096,
            "batch_size": 256,
        }
        for name, style in (("slater", "o-"), ("jastrow", "s--")):
            runs = []
            for seed in seeds:
                errs = []
                for k in dets:
                    hp = {"n_set": n_set, "n_dets": k, "n_basis": n_basis}
                    errs.append(fit_and_test(name, data, epochs=epochs, lr=lr, seed=seed, **hp))
                    log.info("lam=%s %s K=%d seed=%d nmse=%.3g", lam, name, k, seed, errs[-1])
                runs.append(errs)
            plot_seeds(ax, list(dets), runs, style, label=name)
        _log_axes(ax, dets, "determinants K", f"λ = {lam}")
    axes[0][0].set_ylabel("test nmse  Σ(f−Ψ)²/ΣΨ²")
    axes[0][0].legend()
    fig.suptitle(
        f"Calogero Ψ_λ, N = {n_set}: Slater sum vs Jastrow·Slater "
        f"({epochs} epochs; {seeds_note(seeds)})"
    )
    return fig


@register_figure("ansatz_deepsets_vs_relnet")
def deepsets_vs_relnet(
    *,
    widths: tuple[int, ...] = (1, 2, 4, 8, 16, 32),
    settings: tuple[tuple[int, int], ...] = ((2, 4), (4, 8), (8, 8)),
    beta: float = 2.0,
    hidden: int = 64,
    n_train: int = 4096,
    epochs: int = 25,
    lr: float = 3e-3,
    seeds: tuple[int, ...] = (0,),
) -> Figure:
    """Test nmse vs latent width L for ``deepsets`` and ``relation_net``; ``settings`` is a
    list of (D, N); target Σ_{i<j} exp(β⟨x_i, x_j⟩), x_i uniform on S^{D−1}."""
    fig, axes = new_figure(
        1, len(settings), figsize=(4 * len(settings), 3.4), sharey=True, squeeze=False
    )
    for ax, (d, n) in zip(axes[0], settings):
        data = {
            "n_set": n,
            "sampler": "sphere",
            "target": "pairwise_energy",
            "target_params": {"u": "exp", "beta": beta},
            "n_train": n_train,
            "n_val": 16,
            "n_test": 4096,
            "batch_size": 256,
        }
        for name, style in (("deepsets", "o-"), ("relation_net", "s--")):
            runs = []
            for seed in seeds:
                errs = []
                for w in widths:
                    hp = {"dim": d, "width": w, "hidden": hidden}
                    errs.append(fit_and_test(name, data, epochs=epochs, lr=lr, seed=seed, **hp))
                    log.info("D=%d N=%d %s L=%d seed=%d nmse=%.3g", d, n, name, w, seed, errs[-1])
                runs.append(errs)
            plot_seeds(ax, list(widths), runs, style, label=name)
        _log_axes(ax, widths, "width L", f"D = {d}, N = {n}")
    axes[0][0].set_ylabel("test nmse")
    axes[0][0].legend()
    fig.suptitle(
        f"Σ_{{i<j}} exp({beta}⟨x_i, x_j⟩) on the sphere "
        f"({epochs} epochs, hidden {hidden}; {seeds_note(seeds)})"
    )
    return fig


@register_figure("sym_single_index")
def sym_single_index_overlap(
    *,
    links: tuple[str, ...] = ("he1", "he2", "he3"),
    beta: tuple[float, ...] = (0.5, -0.5, 0.0, 0.5, 0.0, 0.5),
    n_set: int = 8,
    steps: int = 1000,
    batch_size: int = 64,
    lr: float = 0.05,
    seeds: tuple[int, ...] = (0, 1, 2, 3),
) -> Figure:
    """Overlap ⟨β, β*⟩/|β||β*| vs online-SGD step for ``sym_single_index`` on CUE sets, one
    fresh batch per step, for each link g (He_k has information exponent k).

    For an even link β* and −β* define the same function, so its |overlap| is drawn.
    """
    fig, ax = new_figure(figsize=(8, 3.6))
    z = torch.linspace(0.1, 3.0, 7)
    for c, link in enumerate(links):
        g = link_function(link)
        even = torch.allclose(g(z), g(-z))
        curves = []
        for seed in seeds:
            seed_everything(seed)
            model = create("sym_single_index", n_features=len(beta), link=link, lr=lr)
            dm = create_datamodule(
                model,
                n_set=n_set,
                target_params={"beta": list(beta), "link": link},
                # every batch is fresh: the cached split, then a new draw every epoch
                n_train=batch_size * min(steps, 64),
                n_val=1,
                n_test=1,
                batch_size=batch_size,
                seed=seed,
                resample=True,
            )
            trace = StepTrace(lambda m: m.overlap(beta).item())
            quick_fit(model, dm, max_steps=steps, seed=seed, callbacks=[trace])
            curves.append([abs(o) for o in trace.values] if even else trace.values)
            log.info("%s seed=%d final overlap %.3f", link, seed, trace.values[-1])
        finals = ", ".join(f"{o[-1]:+.2f}" for o in curves)
        label = f"{'|' + link + '|' if even else link} (final {finals})"
        plot_seeds(ax, [s + 1 for s in trace.steps], curves, "-", label=label, color=f"C{c}")
    ax.axhline(1.0, color="k", lw=0.5)
    ax.axhline(0.0, color="k", lw=0.5)
    ax.set(
        xscale="log",
        xlabel="SGD step + 1 (a fresh CUE batch each)",
        ylabel="overlap ⟨β, β*⟩ / |β||β*|",
        title=f"symmetric single index, N = {n_set}, K = {len(beta)}, lr = {lr}\n"
        f"{seeds_note(seeds)}",
    )
    ax.legend(
        title="link g (|·|: even link)\nfinal overlap per seed",
        fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
    )
    ax.grid(alpha=0.3)
    return fig
