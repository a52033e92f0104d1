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
from collections.abc import Sequence
from typing import Any

import torch
from matplotlib.figure import Figure
from torch import nn

from zoo.ansatz.base import SetRegressor, nmse
from zoo.ansatz.targets import link_function
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


@register_figure("ansatz_slater_vs_jastrow")
def slater_vs_jastrow(
    *,
    lams: tuple[float, ...] = (1.0, 1.5, 2.5),
    dets: tuple[int, ...] = (1, 2, 4, 8),
    n_set: int = 4,
    n_basis: int = 12,
    n_train: int = 4096,
    n_test: int = 32768,
    epochs: int = 30,
    lr: float = 1e-2,
    new_scale: float = 0.3,
    seeds: tuple[int, ...] = (0, 1, 2),
) -> Figure:
    """Test nmse vs K for ``slater`` and ``jastrow`` (Hermite orbitals) on Ψ_λ, N = n_set.

    A nested sweep (:func:`nested_sweep`): K determinants start from the trained K′ < K
    ones plus K − K′ new determinants with ``new_scale`` × their initial coefficients, and
    train ``epochs`` more (Adam at ``lr``, a cosine schedule per K); the first Slater sum
    trains from scratch, and the first Jastrow–Slater model starts from it with J = 0 (the
    same function: from scratch, the Jastrow factor can scale f to 0 within 20 steps and
    stay there). Validation (for keeping a warm start) and test splits have ``n_test`` sets
    each: the squared error per set is heavy-tailed, so smaller splits disagree on which of two
    close models is better.
    """
    fig, axes = new_figure(1, len(lams), figsize=(4 * len(lams), 3.6), sharey=True, squeeze=False)
    data = {"n_train": n_train, "n_val": n_test, "n_test": n_test, "batch_size": 256}
    for ax, lam in zip(axes[0], lams):
        runs: dict[str, list[list[float]]] = {"slater": [], "jastrow": []}
        for seed in seeds:
            start = None
            for name in runs:
                errors, models = nested_sweep(
                    name,
                    {**data, "target_params": {"lam": lam}},
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
        for (name, errs), style in zip(runs.items(), ("o-", "s--")):
            plot_seeds(ax, list(dets), errs, style, label=name)
        _log_axes(ax, dets, "determinants K", f"λ = {lam}")
    axes[0][0].set_ylabel("test nmse  Σ(f−Ψ)²/Σ(Ψ−Ψ̄)²")
    axes[0][0].legend()
    steps = epochs * -(-n_train // data["batch_size"])
    fig.suptitle(
        f"Calogero Ψ_λ, N = {n_set}, M = {n_basis} Hermite orbitals: Slater sum vs "
        f"Jastrow·Slater; {seeds_note(seeds)}\neach K: {epochs} epochs ({steps} Adam steps) "
        f"warm-started from the previous K, {n_train} training / {n_test} test sets"
    )
    return fig


@register_figure("ansatz_deepsets_vs_relnet")
def deepsets_vs_relnet(
    *,
    widths: tuple[int, ...] = (1, 2, 4, 8, 16, 32),
    settings: tuple[tuple[int, int], ...] = ((2, 4), (4, 4), (8, 4)),
    beta: float = 2.0,
    hidden: int = 64,
    n_train: int = 4096,
    epochs: int = 15,
    lr: float = 1e-2,
    seeds: tuple[int, ...] = (0, 1, 2),
) -> Figure:
    """Test nmse vs latent width L for ``deepsets`` and ``relation_net``; ``settings`` is a
    list of (D, N); target Σ_{i<j} exp(β⟨x_i, x_j⟩), x_i uniform on S^{D−1}.

    A nested sweep (:func:`nested_sweep`): width L starts from the trained L′ < L network
    with the new latent channels' weights into ρ at 0 (the same function), and trains
    ``epochs`` more (Adam at ``lr``, a cosine schedule per L) on a fresh draw of ``n_train``
    sets every epoch.
    """
    fig, axes = new_figure(
        1, len(settings), figsize=(4 * len(settings), 3.6), sharey=True, squeeze=False
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
    axes[0][0].set_ylabel("test nmse")
    axes[0][0].legend()
    steps = epochs * -(-n_train // batch)
    fig.suptitle(
        f"Σ_{{i<j}} exp({beta}⟨x_i, x_j⟩) on the sphere, hidden {hidden}; {seeds_note(seeds)}\n"
        f"each L: {epochs} epochs ({steps} Adam steps, {n_train} fresh sets per epoch) "
        "warm-started from the previous L; 8192 test sets"
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
        title=f"symmetric single index, N = {n_set}, K = {len(beta)}: {steps} online SGD steps, "
        f"batch {batch_size}, lr = {lr}\n{seeds_note(seeds)}",
    )
    ax.legend(
        title="link g (|·|: even link)\nfinal overlap per seed",
        fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
    )
    ax.grid(alpha=0.3)
    return fig
