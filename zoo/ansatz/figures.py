"""Figures of the ansatz family (``python recipes/reproduce.py fig=<name>``).

- ``ansatz_slater_vs_jastrow``: test nmse vs number of determinants K, Slater vs Jastrow,
  on the Calogero target Ψ_λ for λ ∈ {1, 1.5, 2.5}.
- ``ansatz_deepsets_vs_relnet``: test nmse vs width L, DeepSets vs Relation Net, on the
  pairwise energy Σ_{i<j} exp(β⟨x_i, x_j⟩) on the sphere, for several (D, N).
- ``sym_single_index``: overlap ⟨β, β*⟩ vs SGD step for links of information exponent 1–3.

Every run trains a registered model on the ``sets`` datamodule with
:func:`zoo.core.figures.quick_fit` (its own loss and optimiser). The two sweeps are nested
(:func:`nested_sweep`): each size (K, L) starts from the trained previous size, whose
function it can represent exactly, and keeps it unless continuing lowers the validation
nmse; so a curve is the best error found at each size, which, like the best achievable
error, cannot grow with the size. They report the nmse Σ(f − y)²/Σ(y − ȳ)² on the test
split (:func:`split_nmse`) and draw the mean over seeds with a min–max band
(:func:`zoo.core.figures.plot_seeds`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import torch
from matplotlib.figure import Figure
from torch import nn

from zoo.ansatz.base import SetRegressor, nmse
from zoo.ansatz.targets import link_function
from zoo.core.checkpoint import load
from zoo.core.evaluation import bootstrap
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

__all__ = [
    "deepsets_vs_relnet",
    "fit_and_test",
    "grow",
    "nested_sweep",
    "slater_vs_jastrow",
    "split_nmse",
    "sym_single_index_overlap",
]

log = logging.getLogger(__name__)


def split_nmse(model: SetRegressor, dm: Any, split: str) -> float:
    """nmse Σ(f − y)²/Σ(y − ȳ)² of ``model`` on the whole ``split`` of the datamodule ``dm``
    (the family's statistic, without a bootstrap)."""
    x, y = dm.split(split)[:2]
    with torch.no_grad():
        f = torch.cat([model(xb) for xb in x.split(4096)]).reshape(y.shape)
    return bootstrap(model.set_columns(f, y), {"nmse": nmse}, resamples=0)["nmse"].value


def fit_and_test(
    name: str, data: dict[str, Any], *, epochs: int, lr: float, seed: int, **hparams: Any
) -> float:
    """Test nmse of model ``name`` (``hparams``, Adam at ``lr`` with a per-step cosine
    schedule) after ``epochs`` on the ``sets`` data ``data`` drawn with ``seed``."""
    seed_everything(seed)
    model = create(name, lr=lr, optimizer="adam", scheduler="cosine", **hparams)
    dm = create_datamodule(model, seed=seed, **data)
    quick_fit(model, dm, max_epochs=epochs, seed=seed)
    return split_nmse(model, dm, "test")


def grow(
    model: nn.Module, smaller: nn.Module, *, zero: tuple[str, ...] = (), scale: float = 1.0
) -> None:
    """Start ``model`` from ``smaller``, a model with fewer units (determinants, width) or
    fewer parts (a Slater sum for a Jastrow–Slater model): every tensor of ``smaller`` is
    copied into the leading block of ``model``'s tensor of the same key; the new entries keep
    their initialisation, multiplied by ``scale``, or are set to 0 for the keys in ``zero``,
    and tensors ``smaller`` lacks keep theirs (so that, with the right ``zero``/``scale`` and a
    part that starts as the identity, ``model`` starts at ``smaller``'s function)."""
    small = smaller.state_dict()
    with torch.no_grad():
        for key, t in model.state_dict().items():
            if key not in small:
                continue
            s = small[key]
            block = tuple(slice(0, n) for n in s.shape)
            if s.shape != t.shape:
                t.mul_(0.0 if key in zero else scale)
            t[block] = s


def nested_sweep(
    name: str,
    data: dict[str, Any],
    size_key: str,
    sizes: Sequence[int],
    *,
    epochs: int,
    lr: float,
    seed: int,
    warm_lr: float | None = None,
    zero: tuple[str, ...] = (),
    scale: float = 1.0,
    start: SetRegressor | None = None,
    **hparams: Any,
) -> tuple[list[float], list[SetRegressor]]:
    """Test nmse of model ``name`` at each of the increasing ``sizes`` of ``size_key``, each
    size warm-started from the previous one (:func:`grow` with ``zero``, ``scale``) and
    trained ``epochs`` more.

    The first size trains from scratch at ``lr`` (or, given a trained model ``start``, grows
    from it like the later sizes), the others at ``warm_lr`` (default ``lr``; Adam, a per-step
    cosine schedule each). A continuation that does not lower the validation nmse below the
    previous model's is replaced by the previous model itself, its new units set to 0 (the
    same function, so the same test nmse): the error never increases with the size, as the
    best achievable error of nested models cannot.

    Returns:
        The test nmse and the trained model of every size.
    """
    if list(sizes) != sorted(set(sizes)):
        raise ValueError(f"{size_key} sizes must increase, got {list(sizes)}")
    errors: list[float] = []
    models: list[SetRegressor] = []
    previous = start
    for size in sizes:
        rate = lr if previous is None or warm_lr is None else warm_lr

        def build(rate: float = rate, size: int = size) -> SetRegressor:
            seed_everything(seed)
            hp = {**hparams, size_key: size}
            return create(name, lr=rate, optimizer="adam", scheduler="cosine", **hp)

        model = build()
        dm = create_datamodule(model, seed=seed, **data)
        if previous is not None:
            grow(model, previous, zero=zero, scale=scale)
        quick_fit(model, dm, max_epochs=epochs, seed=seed)
        if previous is None or split_nmse(model, dm, "val") < split_nmse(previous, dm, "val"):
            errors.append(split_nmse(model, dm, "test"))
        else:
            model = build().eval()
            grow(model, previous, scale=0.0)
            same = errors[-1] if errors else split_nmse(model, dm, "test")
            errors.append(same)
            log.info("%s %s=%d seed=%d: kept the previous model", name, size_key, size, seed)
        log.info("%s %s=%d seed=%d nmse=%.3g", name, size_key, size, seed, errors[-1])
        models.append(model)
        previous = model
    return errors, models


def _log_axes(ax: Any, xs: Sequence[int], xlabel: str, title: str) -> None:
    from matplotlib.ticker import NullFormatter

    ax.set(xscale="log", yscale="log", xlabel=xlabel, title=title)
    ax.set_xticks(list(xs), [str(x) for x in xs])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.grid(alpha=0.3, which="both")


def _n_params(name: str, **hparams: Any) -> int:
    """Number of parameters of model ``name`` built with ``hparams``."""
    return sum(p.numel() for p in create(name, **hparams).parameters())


@register_figure("ansatz_slater_vs_jastrow")
def slater_vs_jastrow(
    *,
    lams: tuple[float, ...] = (1.0, 1.5, 2.5),
    dets: tuple[int, ...] = (1, 2, 4, 8, 16),
    n_set: int = 4,
    n_basis: int = 12,
    std: float = 1.5,
    backflow: dict[str, int] | None = None,
    n_train: int = 4096,
    n_test: int = 16384,
    epochs: int = 16,
    lr: float = 1e-2,
    new_scale: float = 0.3,
    checkpoints: tuple[str, ...] = ("slater_l25", "jastrow_l25", "backflow"),
    seeds: tuple[int, ...] = (0, 1, 2),
) -> Figure:
    """Test nmse vs K for ``slater``, ``jastrow`` (Hermite orbitals) and ``backflow`` on Ψ_λ,
    N = n_set, x_i ~ N(0, std²).

    A nested sweep (:func:`nested_sweep`): K determinants start from the trained K′ < K
    ones plus K − K′ new determinants with ``new_scale`` × their initial coefficients, and
    train ``epochs`` more (Adam at ``lr``, a cosine schedule per K); the first Slater sum
    trains from scratch, and the first Jastrow–Slater model starts from it with J = 0 (the
    same function: from scratch, the Jastrow factor can scale f to 0 within 20 steps and
    stay there). ``backflow`` (its hyper-parameters; default: width 20, pair width 8, 2
    layers, the parameter count of ``jastrow`` at K = 1) trains its first K for 2 × ``epochs``
    from scratch (the budget of the first Jastrow–Slater model and the Slater sum it starts
    from), then nests like the others. Validation (for keeping a warm
    start) and test splits have ``n_test`` sets each. The shipped ``checkpoints`` trained on
    a panel's data (same N, λ, std; trained for 100 epochs of 16 384 sets) are drawn as
    black markers at their K, evaluated on the test split of the first seed.
    """
    bf = {"hidden": 20, "pair_hidden": 8, "layers": 2, **(backflow or {})}
    fig, axes = new_figure(1, len(lams), figsize=(4 * len(lams), 3.8), sharey=True, squeeze=False)
    data = {
        "n_train": n_train,
        "n_val": n_test,
        "n_test": n_test,
        "batch_size": 256,
        "sampler_params": {"std": std},
    }
    common = {"n_set": n_set}
    sizes = {
        "slater": [_n_params("slater", n_dets=k, n_basis=n_basis, **common) for k in dets],
        "jastrow": [_n_params("jastrow", n_dets=k, n_basis=n_basis, **common) for k in dets],
        "backflow": [_n_params("backflow", n_dets=k, **bf, **common) for k in dets],
    }
    for ax, lam in zip(axes[0], lams):
        runs: dict[str, list[list[float]]] = {name: [] for name in sizes}
        for seed in seeds:
            start = None
            lam_data = {**data, "target_params": {"lam": lam}}
            for name in ("slater", "jastrow"):
                errors, models = nested_sweep(
                    name,
                    lam_data,
                    "n_dets",
                    dets,
                    epochs=epochs,
                    lr=lr,
                    seed=seed,
                    scale=new_scale,
                    start=start,
                    n_set=n_set,
                    n_basis=n_basis,
                )
                runs[name].append(errors)
                start = models[0]  # Jastrow·Slater starts from the first Slater sum (J = 0)
            first, grown = nested_sweep(
                "backflow",
                lam_data,
                "n_dets",
                dets[:1],
                epochs=2 * epochs,
                lr=lr,
                seed=seed,
                n_set=n_set,
                **bf,
            )
            rest, _ = nested_sweep(
                "backflow",
                lam_data,
                "n_dets",
                dets[1:],
                epochs=epochs,
                lr=lr,
                seed=seed,
                scale=new_scale,
                start=grown[0],
                n_set=n_set,
                **bf,
            )
            runs["backflow"].append(first + rest)
        for (name, errs), style in zip(runs.items(), ("o-", "s--", "^-.")):
            n = sizes[name]
            span = f"{n[0]}" if len(n) == 1 else f"{n[0]}–{n[-1]}"
            plot_seeds(ax, list(dets), errs, style, label=f"{name} ({span} params)")
        for name, marker in zip(checkpoints, ("*", "P", "X")):
            model = load(name)
            ck = model.zoo_data_config or {}
            same = {"n_set": n_set, "target_params": {"lam": lam}, "sampler_params": {"std": std}}
            if {k: ck.get(k) for k in same} == same:
                dm = create_datamodule(model, seed=seeds[0], n_val=1, n_test=n_test)
                err = split_nmse(model.eval(), dm, "test")
                k = model.hparams.n_dets
                ax.plot([k], [err], marker, color="k", ms=9, label=f"checkpoint {name}")
        _log_axes(ax, dets, "determinants K", f"λ = {lam}")
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("test nmse  Σ(f−Ψ)²/Σ(Ψ−Ψ̄)²")
    steps = epochs * -(-n_train // data["batch_size"])
    fig.suptitle(
        f"Calogero Ψ_λ, N = {n_set}, x_i ~ N(0, {std}²), M = {n_basis} Hermite orbitals: Slater "
        f"sum vs Jastrow·Slater vs backflow; {seeds_note(seeds)}\neach K: {epochs} epochs "
        f"({steps} Adam steps) warm-started from the previous K (first Jastrow K from the "
        f"Slater K = 1, first backflow K: {2 * steps} steps), {n_train} training / {n_test} "
        "test sets",
        fontsize=9,
    )
    return fig


@register_figure("ansatz_deepsets_vs_relnet")
def deepsets_vs_relnet(
    *,
    widths: tuple[int, ...] = (1, 2, 4, 8, 16, 32),
    settings: tuple[tuple[int, int], ...] = ((4, 4), (8, 4)),
    beta: float = 2.0,
    hidden: int = 64,
    n_train: int = 4096,
    epochs: int = 25,
    lr: float = 1e-2,
    seeds: tuple[int, ...] = (0, 1, 2),
) -> Figure:
    """Test nmse vs latent width L for ``deepsets`` and ``relation_net``; ``settings`` is a
    list of (D, N); target Σ_{i<j} exp(β⟨x_i, x_j⟩), x_i uniform on S^{D−1}.

    A relation net represents the target at L = 1 (ψ = exp(β⟨·, ·⟩)); a DeepSets needs the
    spherical harmonics of every degree the target contains, a number that grows like D^k. A
    nested sweep (:func:`nested_sweep`): width L starts from the trained L′ < L network with
    the new latent channels' weights into ρ at 0 (the same function), and trains ``epochs``
    more (Adam at ``lr``, a cosine schedule per L) on a fresh draw of ``n_train`` sets every
    epoch.
    """
    fig, axes = new_figure(
        1, len(settings), figsize=(4 * len(settings), 3.8), sharey=True, squeeze=False
    )
    batch = 256
    for ax, (d, n) in zip(axes[0], settings):
        data = {
            "n_set": n,
            "sampler": "sphere",
            "target": "pairwise_energy",
            "target_params": {"u": "exp", "beta": beta},
            "n_train": n_train,
            "n_val": 4096,
            "n_test": 8192,
            "batch_size": batch,
            "resample": True,
        }
        for name, style in (("deepsets", "o-"), ("relation_net", "s--")):
            runs = [
                nested_sweep(
                    name,
                    data,
                    "width",
                    widths,
                    epochs=epochs,
                    lr=lr,
                    seed=seed,
                    zero=("rho.0.weight",),
                    dim=d,
                    hidden=hidden,
                )[0]
                for seed in seeds
            ]
            plot_seeds(ax, list(widths), runs, style, label=name)
        _log_axes(ax, widths, "width L", f"D = {d}, N = {n}")
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("test nmse")
    steps = epochs * -(-n_train // batch)
    fig.suptitle(
        f"Σ_{{i<j}} exp({beta}⟨x_i, x_j⟩) on the sphere, hidden {hidden}; {seeds_note(seeds)}"
        f"\neach L: {epochs} epochs ({steps} Adam steps, "
        f"{n_train} fresh sets per epoch) warm-started from the previous L; 8192 test sets",
        fontsize=9,
    )
    return fig


def _first_success(values: Sequence[float], steps: Sequence[int], threshold: float) -> int | None:
    """The first step whose overlap reaches ``threshold`` (None if none does)."""
    return next((t for t, v in zip(steps, values) if v >= threshold), None)


@register_figure("sym_single_index")
def sym_single_index_overlap(
    *,
    links: tuple[str, ...] = ("he1", "he2", "he3", "he4"),
    sizes: tuple[int, ...] = (4, 16),
    n_set: int = 12,
    steps: int = 500,
    batch_size: int = 64,
    lr: float = 0.05,
    threshold: float = 0.9,
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7),
) -> Figure:
    """Overlap ⟨β, β*⟩/|β||β*| vs online-SGD step for ``sym_single_index`` on CUE sets of
    ``n_set`` eigenvalues, one fresh batch per step, for each link g (He_k has information
    exponent k) and each input size K (the number of power sums, the dimension of β;
    β* = (1, …, 1)/√K); the last panel is each seed's first step at which the overlap
    reaches ``threshold`` (× at the budget where it does not), against k, and the median
    where more than half of the seeds reach it.

    For an even link β* and −β* define the same function, so its |overlap| is drawn and
    counts; for an odd link only +β* is a solution.
    """
    fig, axes = new_figure(1, len(sizes) + 1, figsize=(4.2 * (len(sizes) + 1), 3.8), squeeze=False)
    z = torch.linspace(0.1, 3.0, 7)
    hitting: dict[int, list[tuple[int, list[int | None]]]] = {k: [] for k in sizes}
    for ax, k in zip(axes[0], sizes):
        beta = [1.0 / math.sqrt(k)] * k
        for c, link in enumerate(links):
            g = link_function(link)
            even = torch.allclose(g(z), g(-z))
            curves, hits = [], []
            for seed in seeds:
                seed_everything(seed)
                model = create("sym_single_index", n_features=k, link=link, lr=lr)
                dm = create_datamodule(
                    model,
                    n_set=n_set,
                    target_params={"beta": beta, "link": link},
                    # every batch is fresh: the cached split, then a new draw every epoch
                    n_train=batch_size * min(steps, 64),
                    n_val=1,
                    n_test=1,
                    batch_size=batch_size,
                    seed=seed,
                    resample=True,
                )
                trace = StepTrace(lambda m, b=beta: m.overlap(b).item())
                quick_fit(model, dm, max_steps=steps, seed=seed, callbacks=[trace])
                curve = [abs(o) for o in trace.values] if even else trace.values
                curves.append(curve)
                hits.append(_first_success(curve, trace.steps, threshold))
                log.info("K=%d %s seed=%d final overlap %.3f", k, link, seed, trace.values[-1])
            hitting[k].append((int(link[2:]) if link.startswith("he") else c + 1, hits))
            reached = sum(h is not None for h in hits)
            label = f"{'|' + link + '|' if even else link}: {reached}/{len(hits)} reach"
            plot_seeds(ax, [s + 1 for s in trace.steps], curves, "-", label=label, color=f"C{c}")
        ax.axhline(threshold, color="k", lw=0.5, ls=":")
        ax.axhline(0.0, color="k", lw=0.5)
        ax.set(
            xscale="log",
            xlabel="SGD step + 1 (a fresh CUE batch each)",
            title=f"input size K = {k}",
        )
        ax.legend(fontsize=7, loc="upper left", title=f"overlap ≥ {threshold}", title_fontsize=7)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("overlap ⟨β, β*⟩ / |β||β*| (|·| for even g)")
    last = axes[0][-1]
    for i, (k, rows) in enumerate(hitting.items()):
        offset = 0.12 * (2 * i - len(sizes) + 1)
        for e, hits in rows:
            jitter = torch.linspace(-0.04, 0.04, len(hits)).tolist()
            ok = [(e + offset + j, h + 1) for j, h in zip(jitter, hits) if h is not None]
            miss = [e + offset + j for j, h in zip(jitter, hits) if h is None]
            first = e == rows[0][0]
            label = f"K = {k}" if first else None
            if ok:
                last.plot(*zip(*ok), "o", color=f"C{i}", ms=4, label=label)
                label = None
            if miss:
                last.plot(miss, [steps + 1] * len(miss), "x", color=f"C{i}", ms=5, label=label)
        medians = [
            (e + offset, sorted(h for h in hits if h is not None)[len(hits) // 2] + 1)
            for e, hits in rows
            if sum(h is not None for h in hits) * 2 > len(hits)
        ]
        if medians:
            last.plot(*zip(*medians), "-", color=f"C{i}", lw=1)
    last.axhline(steps + 1, color="k", lw=0.5, ls=":")
    last.set(
        yscale="log",
        xlabel="information exponent k of g = He_k",
        ylabel=f"first step + 1 with overlap ≥ {threshold}",
        title="each seed (×: not reached); line: median",
    )
    last.set_xticks(sorted({e for rows in hitting.values() for e, _ in rows}))
    last.legend(fontsize=7)
    last.grid(alpha=0.3, which="both")
    fig.suptitle(
        f"symmetric single index, N = {n_set} CUE eigenvalues, β* = (1, …, 1)/√K: {steps} "
        f"online SGD steps, batch {batch_size}, lr = {lr}; {seeds_note(seeds)}",
        fontsize=9,
    )
    return fig
