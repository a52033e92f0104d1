"""Figures of the U-Net BP family (``python recipes/reproduce.py fig=<name>``).

- ``unet_bp_mse``: denoising MSE of the σ-conditioned U-Net checkpoint and the Bayes MSE of
  exact BP across σ, on fresh data.
- ``unet_bp_samples``: test MSE / Bayes MSE vs the number of clean training sequences, U-Net
  vs the same encoder-decoder without long skips (widened to at least the same size).
- ``convnet_bp_acc``: root accuracy of ``convnet_bp`` vs the number of training sequences,
  with the BP (Bayes-optimal) accuracy.

The sweeps train with a plain loop (fixed number of Adam steps, cosine schedule, fresh noise
every step for denoising) to stay within a few CPU minutes.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

import zoo
from zoo.core.callbacks import run_dir  # noqa: F401  (sets the Agg backend)
from zoo.core.figures import register_figure
from zoo.hierarchical import bp
from zoo.hierarchical.data import Grammar, build_grammar, draw_sigma

log = logging.getLogger(__name__)

__all__ = ["convnet_bp_acc", "unet_bp_mse", "unet_bp_samples"]


def _data_cfg(task: str, depth: int, grammar_seed: int, sigma: float) -> dict[str, Any]:
    spec = zoo.get_spec("unet_bp" if task == "denoising" else "convnet_bp")
    return spec.data_config(depth=depth, grammar_seed=grammar_seed, sigma=sigma)


def _n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _fit(
    model: torch.nn.Module,
    loss_fn: Any,
    data: tuple[torch.Tensor, ...],
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
) -> None:
    """Adam with a cosine schedule on mini-batches drawn from ``data`` with replacement."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    model.train()
    n = len(data[0])
    for _ in range(steps):
        idx = torch.randint(0, n, (min(batch_size, n),), generator=g)
        loss = loss_fn(model, [t[idx] for t in data], g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    model.eval()


def _denoise_loss(cfg: dict[str, Any]) -> Any:
    def loss(model: torch.nn.Module, batch: list[torch.Tensor], g: torch.Generator) -> torch.Tensor:
        (leaves,) = batch
        sigma = draw_sigma(len(leaves), cfg, g, leaves.device)
        clean = F.one_hot(leaves, cfg["n_symbols"]).float()
        y = clean + sigma[:, None, None] * torch.randn(clean.shape, generator=g)
        return F.mse_loss(model(y, sigma), clean)

    return loss


@torch.no_grad()
def _test_mse(
    model: torch.nn.Module,
    grammar: Grammar,
    y: torch.Tensor,
    sigma: torch.Tensor,
    leaves: torch.Tensor,
) -> tuple[float, float]:
    clean = F.one_hot(leaves, grammar.n_symbols).float()
    mse = F.mse_loss(model(y, sigma), clean).item()
    return mse, bp.bayes_mse(grammar, y.double(), sigma.double(), leaves).mean().item()


def _savefig(fig: Any, out_dir: Path, name: str) -> Path:
    import matplotlib.pyplot as plt

    path = out_dir / f"{name}.png"
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return path


@register_figure("unet_bp_mse")
def unet_bp_mse(
    out_dir: Path,
    *,
    checkpoint: str = "unet_bp_sigma",
    fixed_checkpoint: str = "unet_bp",
    sigmas: list[float] = (0.1, 0.2, 0.35, 0.5, 0.7, 1.0, 1.4, 2.0, 3.0, 5.0),
    n_test: int = 2048,
    seed: int = 1,
) -> list[Path]:
    """Model MSE and Bayes MSE vs σ on fresh data (``seed``) for a σ-conditioned checkpoint.

    ``fixed_checkpoint`` (a model trained at one σ) is added as a single point when it exists.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter, NullFormatter

    model = zoo.load(checkpoint)
    cfg = dict(model.zoo_data_config)
    grammar = build_grammar(cfg)
    g = torch.Generator().manual_seed(seed)
    leaves, _ = grammar.sample(n_test, g)
    clean = F.one_hot(leaves, grammar.n_symbols).float()
    rows = []
    for s in sigmas:
        sig = torch.full((n_test,), float(s))
        y = clean + s * torch.randn(clean.shape, generator=g)
        rows.append((s, *_test_mse(model, grammar, y, sig, leaves)))
        log.info("sigma=%.3g mse=%.4g bayes=%.4g", *rows[-1])
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    s_, m_, b_ = zip(*rows)
    ax.plot(s_, m_, "o-", label=f"U-Net ({checkpoint})")
    ax.plot(s_, b_, "k--", label="Bayes (exact BP)")
    # the ratio only where the Bayes error is not ~0 (tiny σ: the leaves are recovered exactly)
    keep = [i for i, b in enumerate(b_) if b > 1e-6]
    ax2.plot([s_[i] for i in keep], [m_[i] / b_[i] for i in keep], "o-", label=checkpoint)
    for i in keep:
        ax2.annotate(
            f"{m_[i] / b_[i]:.3f}",
            (s_[i], m_[i] / b_[i]),
            fontsize=7,
            xytext=(3, 5),
            textcoords="offset points",
        )
    extra = None
    try:
        fixed = zoo.load(fixed_checkpoint)
        fs = float(fixed.zoo_data_config["sigma"])
        if fixed.zoo_data_config.get("grammar_seed") == cfg.get("grammar_seed"):
            y = clean + fs * torch.randn(clean.shape, generator=g)
            extra = (fs, *_test_mse(fixed, grammar, y, torch.full((n_test,), fs), leaves))
    except (FileNotFoundError, ValueError) as e:
        log.info("no fixed-sigma checkpoint: %s", e)
    if extra is not None:
        ax.plot(
            extra[0], extra[1], "r*", ms=12, label=f"{fixed_checkpoint} (trained at σ={extra[0]:g})"
        )
        ax2.plot(extra[0], extra[1] / extra[2], "r*", ms=12, label=fixed_checkpoint)
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
        xscale="log", xlabel="noise σ", ylabel="model MSE / Bayes MSE", title="ratio to exact BP"
    )
    ax.set_ylim(1e-6, 0.3)  # Bayes MSE at σ → 0 is ~0 (below the axis)
    for a in (ax, ax2):
        a.set_xticks([t for t in (0.1, 0.2, 0.5, 1, 2, 5) if min(s_) <= t <= max(s_)])
        a.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        a.xaxis.set_minor_formatter(NullFormatter())
        a.legend(fontsize=8)
    fig.tight_layout()
    return [_savefig(fig, out_dir, "unet_bp_mse")]


def _matched_noskip(width: int, depth: int, target: int) -> torch.nn.Module:
    """The smallest no-skip model with at least ``target`` parameters."""
    for w in range(width, 4 * width):
        model = zoo.create("unet_bp_noskip", depth=depth, width=w)
        if _n_params(model) >= target:
            return model
    return model


@register_figure("unet_bp_samples")
def unet_bp_samples(
    out_dir: Path,
    *,
    n_trains: list[int] = (64, 256, 1024, 4096),
    depth: int = 4,
    width: int = 48,
    sigma: float = 1.0,
    steps: int = 500,
    batch_size: int = 128,
    lr: float = 2e-3,
    n_test: int = 1024,
    seed: int = 0,
) -> list[Path]:
    """Test MSE / Bayes MSE vs number of clean training sequences: U-Net vs no-skip CNN."""
    import matplotlib.pyplot as plt

    cfg = _data_cfg("denoising", depth, 0, sigma)
    grammar = build_grammar(cfg)
    g = torch.Generator().manual_seed(10_000 + seed)
    test_leaves, _ = grammar.sample(n_test, g)
    clean = F.one_hot(test_leaves, grammar.n_symbols).float()
    y = clean + sigma * torch.randn(clean.shape, generator=g)
    sig = torch.full((n_test,), sigma)
    n_seq = grammar.n_symbols * math.prod(
        int((t.reshape(grammar.n_symbols, -1)[0] > 0).sum()) ** (grammar.branching**lvl)
        for lvl, t in enumerate(grammar.transitions)
    )
    curves: dict[str, list[float]] = {}
    sizes: dict[str, int] = {}
    for n in n_trains:
        train_leaves, _ = grammar.sample(n, torch.Generator().manual_seed(seed * 7919 + n))
        torch.manual_seed(seed)
        unet = zoo.create("unet_bp", depth=depth, width=width)
        torch.manual_seed(seed)
        plain = _matched_noskip(width, depth, _n_params(unet))
        for label, model in (("U-Net (long skips)", unet), ("CNN, no skips", plain)):
            _fit(
                model,
                _denoise_loss(cfg),
                (train_leaves,),
                steps=steps,
                batch_size=batch_size,
                lr=lr,
                seed=seed,
            )
            mse, bayes = _test_mse(model, grammar, y, sig, test_leaves)
            curves.setdefault(label, []).append(mse / bayes)
            sizes[label] = _n_params(model)
            log.info("%s n=%d ratio=%.4f", label, n, mse / bayes)
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, vals in curves.items():
        ax.plot(n_trains, vals, "o-", label=f"{label}, {sizes[label] / 1e3:.0f}k params")
    ax.axhline(1.0, color="k", lw=0.8, label="Bayes (exact BP)")
    ax.set(
        xscale="log",
        xlabel="clean training sequences n",
        ylabel="test MSE / Bayes MSE",
        title=f"σ={sigma:g}, L={depth}, {steps} Adam steps; {n_seq} grammatical sequences",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    return [_savefig(fig, out_dir, "unet_bp_samples")]


@register_figure("convnet_bp_acc")
def convnet_bp_acc(
    out_dir: Path,
    *,
    n_trains: list[int] = (32, 64, 128, 256, 512, 1024, 2048),
    depth: int = 4,
    width: int = 64,
    steps: int = 300,
    batch_size: int = 128,
    lr: float = 3e-3,
    n_test: int = 2048,
    seeds: list[int] = (0, 1),
) -> list[Path]:
    """Root accuracy of ``convnet_bp`` vs training size, against exact BP's accuracy."""
    import matplotlib.pyplot as plt

    cfg = _data_cfg("classification", depth, 0, 1.0)
    grammar = build_grammar(cfg)
    leaves, root = grammar.sample(n_test, torch.Generator().manual_seed(10_000))
    bayes = bp.bayes_accuracy(grammar, leaves, root).mean().item()

    def ce(model: torch.nn.Module, batch: list[torch.Tensor], g: torch.Generator) -> torch.Tensor:
        return F.cross_entropy(model(batch[0]), batch[1])

    accs = torch.zeros(len(seeds), len(n_trains))
    for i, seed in enumerate(seeds):
        for j, n in enumerate(n_trains):
            tr = grammar.sample(n, torch.Generator().manual_seed(seed * 7919 + n))
            torch.manual_seed(seed)
            model = zoo.create("convnet_bp", depth=depth, width=width)
            _fit(model, ce, tr, steps=steps, batch_size=batch_size, lr=lr, seed=seed)
            with torch.no_grad():
                accs[i, j] = (model(leaves).argmax(-1) == root).float().mean()
            log.info("seed=%d n=%d acc=%.4f", seed, n, accs[i, j])
    fig, ax = plt.subplots(figsize=(6, 4))
    mean = accs.mean(0)
    ax.plot(n_trains, mean, "o-", label=f"convnet_bp (mean of {len(seeds)} seeds)")
    ax.fill_between(n_trains, accs.min(0).values, accs.max(0).values, alpha=0.2)
    ax.axhline(bayes, color="k", ls="--", label=f"BP (Bayes) accuracy = {bayes:.3f}")
    ax.axhline(0.97 * bayes, color="grey", ls=":", label="0.97 × BP")
    ax.axhline(1 / grammar.n_symbols, color="r", lw=0.8, label="chance")
    ax.set(
        xscale="log",
        xlabel="training sequences n",
        ylabel="test accuracy (root)",
        title=f"RHM root classification, {grammar.describe().split(';')[0]}",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    return [_savefig(fig, out_dir, "convnet_bp_acc")]
