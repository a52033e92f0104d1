"""Figures of the ansatz family (``python recipes/reproduce.py fig=<name>``).

- ``ansatz_slater_vs_jastrow``: test nmse vs number of determinants K, Slater vs Jastrow,
  on the Calogero target Ψ_λ for λ ∈ {1, 1.5, 2.5}.
- ``ansatz_deepsets_vs_relnet``: test nmse vs width L, DeepSets vs Relation Net, on the
  pairwise energy Σ_{i<j} exp(β⟨x_i, x_j⟩) on the sphere, for several (D, N).
- ``sym_single_index``: overlap ⟨β, β*⟩ vs SGD step for links of information exponent 1–3.

Every run trains a registered model (``zoo.create``) on the ``"sets"`` datamodule with a
plain Adam/SGD loop on the model's own loss (no Lightning overhead: the figures sweep
dozens of small runs on CPU).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

import zoo
from zoo.ansatz.models import zero_nonfinite_grads
from zoo.core.data import TensorBatches
from zoo.core.figures import register_figure
from zoo.sets import SetDataModule

__all__ = ["fit_and_test"]

log = logging.getLogger(__name__)


def fit_and_test(
    model: Any,
    dm: SetDataModule,
    *,
    epochs: int,
    lr: float,
    seed: int = 0,
    optimizer: str = "adam",
) -> float:
    """Train ``model`` on ``dm``'s train split with its ``loss``; return the test nmse
    Σ(f − y)²/Σ(y − ȳ)² (cosine-decayed learning rate, batch size of ``dm``)."""
    torch.manual_seed(seed)
    xtr, ytr = dm.split("train")
    if hasattr(model, "fit_standardization"):
        model.fit_standardization(ytr)
    params = [p for p in model.parameters() if p.requires_grad]
    opt: torch.optim.Optimizer = (
        torch.optim.Adam(params, lr=lr) if optimizer == "adam" else torch.optim.SGD(params, lr=lr)
    )
    batches = TensorBatches((xtr, ytr), dm.hparams.batch_size, shuffle=True, seed=seed)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * len(batches))
    model.train()
    for _ in range(epochs):
        for batch in batches:
            opt.zero_grad()
            loss = model.loss(batch)
            if torch.isfinite(loss):
                loss.backward()
                zero_nonfinite_grads(model)
                opt.step()
            sched.step()
    model.eval()
    xte, yte = dm.split("test")
    with torch.no_grad():
        f = torch.cat([model(xb) for xb in xte.split(1024)])
    return float(((f - yte) ** 2).sum() / ((yte - yte.mean()) ** 2).sum())


def _save(fig: Any, out_dir: Path, name: str) -> Path:
    import matplotlib.pyplot as plt

    path = Path(out_dir) / f"{name}.png"
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return path


@register_figure("ansatz_slater_vs_jastrow")
def slater_vs_jastrow(
    out_dir: Path,
    *,
    lams: list[float] = (1.0, 1.5, 2.5),  # type: ignore[assignment]
    dets: list[int] = (1, 2, 4, 8),  # type: ignore[assignment]
    n_set: int = 4,
    n_basis: int = 12,
    n_train: int = 4096,
    epochs: int = 40,
    lr: float = 1e-2,
    seed: int = 0,
) -> list[Path]:
    """Test nmse vs K for ``slater`` and ``jastrow`` (Hermite orbitals) on Ψ_λ, N = n_set."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    results: dict[tuple[str, float], list[float]] = {}
    for lam in lams:
        dm = SetDataModule(
            n_set=n_set,
            dim=1,
            sampler="line",
            target="calogero",
            target_params={"lam": lam},
            n_train=n_train,
            n_val=16,
            n_test=4096,
            batch_size=256,
            seed=seed,
        )
        for name in ("slater", "jastrow"):
            errs = []
            for k in dets:
                torch.manual_seed(seed)
                model = zoo.create(name, n_set=n_set, n_dets=k, n_basis=n_basis)
                errs.append(fit_and_test(model, dm, epochs=epochs, lr=lr, seed=seed))
                log.info("lam=%s %s K=%d nmse=%.3g", lam, name, k, errs[-1])
            results[(name, lam)] = errs
    fig, axes = plt.subplots(1, len(lams), figsize=(4 * len(lams), 3.4), sharey=True)
    for ax, lam in zip(list(axes) if len(lams) > 1 else [axes], lams):
        for name, style in (("slater", "o-"), ("jastrow", "s--")):
            ax.plot(dets, results[(name, lam)], style, label=name)
        ax.set(xscale="log", yscale="log", xlabel="determinants K", title=f"λ = {lam}")
        ax.set_xticks(list(dets), [str(k) for k in dets])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.grid(alpha=0.3, which="both")
    axes_list = list(axes) if len(lams) > 1 else [axes]
    axes_list[0].set_ylabel("test nmse  Σ(f−Ψ)²/ΣΨ²")
    axes_list[0].legend()
    fig.suptitle(f"Calogero Ψ_λ, N = {n_set}: Slater sum vs Jastrow·Slater ({epochs} epochs)")
    fig.tight_layout()
    return [_save(fig, out_dir, "ansatz_slater_vs_jastrow")]


@register_figure("ansatz_deepsets_vs_relnet")
def deepsets_vs_relnet(
    out_dir: Path,
    *,
    widths: list[int] = (1, 2, 4, 8, 16, 32),  # type: ignore[assignment]
    settings: list[list[int]] = ((2, 4), (4, 8), (8, 8)),  # type: ignore[assignment]
    beta: float = 2.0,
    hidden: int = 64,
    n_train: int = 4096,
    epochs: int = 25,
    lr: float = 3e-3,
    seed: int = 0,
) -> list[Path]:
    """Test nmse vs latent width L for ``deepsets`` and ``relation_net``; ``settings`` is a
    list of (D, N); target Σ_{i<j} exp(β⟨x_i, x_j⟩), x_i uniform on S^{D−1}."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    fig, axes = plt.subplots(1, len(settings), figsize=(4 * len(settings), 3.4), sharey=True)
    axes_list = list(axes) if len(settings) > 1 else [axes]
    for ax, (d, n) in zip(axes_list, settings):
        dm = SetDataModule(
            n_set=n,
            dim=d,
            sampler="sphere",
            target="pairwise_energy",
            target_params={"u": "exp", "beta": beta},
            n_train=n_train,
            n_val=16,
            n_test=4096,
            batch_size=256,
            seed=seed,
        )
        for name, style in (("deepsets", "o-"), ("relation_net", "s--")):
            errs = []
            for w in widths:
                torch.manual_seed(seed)
                model = zoo.create(name, dim=d, width=w, hidden=hidden)
                errs.append(fit_and_test(model, dm, epochs=epochs, lr=lr, seed=seed))
                log.info("D=%d N=%d %s L=%d nmse=%.3g", d, n, name, w, errs[-1])
            ax.plot(widths, errs, style, label=name)
        ax.set(xscale="log", yscale="log", xlabel="width L", title=f"D = {d}, N = {n}")
        ax.set_xticks(list(widths), [str(w) for w in widths])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.grid(alpha=0.3, which="both")
    axes_list[0].set_ylabel("test nmse")
    axes_list[0].legend()
    fig.suptitle(
        f"Σ_{{i<j}} exp({beta}⟨x_i, x_j⟩) on the sphere ({epochs} epochs, hidden {hidden})"
    )
    fig.tight_layout()
    return [_save(fig, out_dir, "ansatz_deepsets_vs_relnet")]


@register_figure("sym_single_index")
def sym_single_index_overlap(
    out_dir: Path,
    *,
    links: list[str] = ("he1", "he2", "he3"),  # type: ignore[assignment]
    beta: list[float] = (0.5, -0.5, 0.0, 0.5, 0.0, 0.5),  # type: ignore[assignment]
    n_set: int = 8,
    steps: int = 1000,
    batch_size: int = 64,
    lr: float = 0.05,
    seeds: list[int] = (0, 1, 2, 3),  # type: ignore[assignment]
) -> list[Path]:
    """Overlap ⟨β, β*⟩/|β||β*| vs online-SGD step for ``sym_single_index`` on CUE sets, one
    fresh batch per step, for each link g (He_k has information exponent k)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for c, link in enumerate(links):
        curves: list[list[float]] = []
        for seed in seeds:
            torch.manual_seed(seed)
            model = zoo.create("sym_single_index", n_features=len(beta), link=link)
            dm = SetDataModule(
                n_set=n_set,
                dim=1,
                sampler="cue",
                target="sym_single_index",
                target_params={"beta": list(beta), "link": link},
                n_train=batch_size,
                n_val=1,
                n_test=1,
                batch_size=batch_size,
                seed=seed,
                resample=True,
            )
            loader = dm.train_dataloader()
            opt = torch.optim.SGD(model.parameters(), lr=lr)
            overlaps = [model.overlap(beta).item()]
            for _ in range(steps):
                batch = next(iter(loader))  # one fresh batch per epoch = per step
                opt.zero_grad()
                model.loss(batch).backward()
                opt.step()
                overlaps.append(model.overlap(beta).item())
            curves.append(overlaps)
            log.info("%s seed=%d final overlap %.3f", link, seed, overlaps[-1])
        finals = ", ".join(f"{o[-1]:+.2f}" for o in curves)
        for i, overlaps in enumerate(curves):
            ax.plot(
                range(1, len(overlaps) + 1),
                overlaps,
                color=colors[c % len(colors)],
                alpha=0.8,
                label=f"{link} (final {finals})" if i == 0 else None,
            )
    ax.axhline(1.0, color="k", lw=0.5)
    ax.axhline(0.0, color="k", lw=0.5)
    ax.set(
        xscale="log",
        xlabel="SGD step + 1 (a fresh CUE batch each)",
        ylabel="overlap ⟨β, β*⟩ / |β||β*|",
        title=f"symmetric single index, N = {n_set}, K = {len(beta)}, lr = {lr}",
    )
    ax.legend(title="link g (final overlaps per seed)", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return [_save(fig, out_dir, "sym_single_index")]
