"""Claim: a training epoch through the recipe's Trainer runs at ≥ 0.9× a bare PyTorch loop,
for one fast configuration of every family.

Both sides train the same model (``zoo.create(name)``, same initial weights) on the same
training batches, served by the model's own datamodule loader, for one epoch. The Lightning side
uses the recipe's trainer config (``recipes/configs/trainer/cpu.yaml``, or ``gpu.yaml`` with
``--device cuda``, composed by Hydra) with the recipe's CSV logger and checkpoint callback,
progress bar off, validation off. The bare loop runs the same per-step model code that
Lightning calls — ``training_step`` (the loss and the model's own training statistics, e.g.
the NC tracking of ``gnn_nc``), ``on_before_backward`` (the finite-loss check), backward,
``on_before_optimizer_step`` (e.g. the ansatz models' non-finite-gradient skip), optimiser
step — so the ratio is the cost of Lightning's loop itself, not of the model's bookkeeping.
Epochs are timed from ``on_train_epoch_start`` to ``on_train_epoch_end`` (setup excluded),
alternating the two sides; the median ratio over the repeats (wall and process CPU time) is
printed per model with its range over the repeats (this shared 2-core VM's speed drifts by
±10 % between minutes: compare medians, not single runs), and the median per-step times.

The last lines measure Lightning's own fixed cost per step, the floor under any model: the
same recipe Trainer and a bare loop training one ``Linear(1, 1)`` layer on batches of one
sample. A model reaches the 0.9 goal only if its bare step takes ≥ 9× that cost (plus its
own per-step hooks).

    OMP_NUM_THREADS=1 python benchmarks/train_overhead.py [--models gnn_nc slater ...]
        [--repeats 5] [--device cpu|cuda] [--compile] [--no-floor] [--batch-size B]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor

import zoo

REPO = Path(__file__).resolve().parents[1]


#: One fast configuration per family (the model's default batch size; 256 steps per epoch for
#: the set models, so that an epoch is long enough to time): (model overrides, data overrides).
CONFIGS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "gnn_nc": ({}, {"n_train": 64}),
    "slater": ({}, {"n_train": 65536}),
    "deepsets": ({}, {"n_train": 65536}),
    "rf_attention": ({}, {"n_train": 65536}),
    "unet_bp": ({}, {"n_train": 4096}),
}


class EpochTimer(pl.Callback):
    """Wall and process-CPU time of each training epoch (seconds)."""

    def __init__(self) -> None:
        self.times: list[tuple[float, float]] = []

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        _sync()
        self._t = (time.perf_counter(), time.process_time())

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        _sync()
        self.times.append((time.perf_counter() - self._t[0], time.process_time() - self._t[1]))


def _sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def recipe_trainer(name: str, out: Path, timer: EpochTimer, device: str) -> pl.Trainer:
    """The recipe's Trainer (trainer=cpu|gpu, logger=csv, default callbacks minus the bar)."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    sys.path.insert(0, str(REPO / "recipes"))
    import _common  # noqa: F401  (feeds Hydra's model/data groups from the registry)

    trainer = "gpu" if device == "cuda" else "cpu"
    with initialize_config_dir(str(REPO / "recipes" / "configs"), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[f"model={name}", f"trainer={trainer}", "logger=csv"],
        )
    tcfg = OmegaConf.to_container(cfg.trainer, resolve=False)
    tcfg.update(default_root_dir=str(out), max_epochs=1, limit_val_batches=0)
    tcfg.update(enable_model_summary=False, enable_progress_bar=False)
    logger = pl.loggers.CSVLogger(str(out), name="csv")
    ckpt = pl.callbacks.ModelCheckpoint(dirpath=str(out / "ckpt"), save_last=True)
    return instantiate(tcfg, logger=logger, callbacks=[ckpt, timer], num_sanity_val_steps=0)


def bare_epoch(model: pl.LightningModule, loader: Any) -> tuple[float, float]:
    """One epoch of the plain loop over the model's own step code; returns its (wall,
    process-CPU) time in seconds."""
    opt = model.configure_optimizers()
    if isinstance(opt, dict):
        opt = opt["optimizer"]
    model.train()
    _sync()
    t, c = time.perf_counter(), time.process_time()
    for i, batch in enumerate(loader):
        loss = model.training_step(batch, i)
        opt.zero_grad(set_to_none=True)
        model.on_before_backward(loss)
        loss.backward()
        model.on_before_optimizer_step(opt)
        opt.step()
    _sync()
    return time.perf_counter() - t, time.process_time() - c


def _compiled(model: zoo.core.ZooModule, batch: Any) -> None:
    """``model.compile()`` and one forward/backward outside the timing (the compilation)."""
    model.compile()
    model.training_step(batch, 0).backward()
    model.zero_grad(set_to_none=True)


def measure(
    name: str, repeats: int, device: str, compile: bool = False, batch_size: int | None = None
) -> dict[str, float]:
    """Median speed ratios bare/Lightning (wall, CPU) of one epoch of ``name``, the median
    per-step wall times of both sides (seconds) and the steps per epoch; with ``compile`` both
    models run through ``torch.compile`` (compiled before timing); ``batch_size`` replaces
    the model's default (the training set grows with it, keeping the steps per epoch)."""
    mcfg, dcfg = CONFIGS[name]
    if batch_size is not None:
        default = zoo.create_datamodule(name).hparams.batch_size
        n_train = max(dcfg.get("n_train", 0) * batch_size // default, batch_size)
        dcfg = {**dcfg, "batch_size": batch_size, "n_train": n_train}
    dm = zoo.create_datamodule(name, device=device, **dcfg)
    dm.setup("fit")
    ratios, cpu_ratios, bare, lit = [], [], [], []
    for r in range(repeats):
        torch.manual_seed(r)
        m_bare = zoo.create(name, **mcfg).to(device)
        m_pl = zoo.create(name, **mcfg)
        m_pl.load_state_dict(m_bare.state_dict())
        m_bare.zoo_data_config = m_pl.zoo_data_config = {"name": dm.zoo_name, **dm.hparams}
        if compile:
            first = next(iter(dm.train_dataloader()))
            _compiled(m_bare, first)
            _compiled(m_pl.to(device), first)
        # the same batch order on both sides (graph loaders draw their shuffle from the global
        # generator when a pass starts); tests/test_benchmarks.py checks equal weights
        torch.manual_seed(1000 + r)
        t_bare, c_bare = bare_epoch(m_bare, dm.train_dataloader())
        timer = EpochTimer()
        with tempfile.TemporaryDirectory() as tmp:
            trainer = recipe_trainer(name, Path(tmp), timer, device)
            torch.manual_seed(1000 + r)
            trainer.fit(m_pl, datamodule=dm)
        t_pl, c_pl = timer.times[0]
        ratios.append(t_bare / t_pl)
        cpu_ratios.append(c_bare / c_pl)
        bare.append(t_bare)
        lit.append(t_pl)
        print(
            f"{name} repeat {r}: bare {t_bare:.3f} s (cpu {c_bare:.3f}), "
            f"lightning {t_pl:.3f} s (cpu {c_pl:.3f})",
            file=sys.stderr,
        )
    med, steps = statistics.median, len(dm.train_dataloader())
    return {
        "wall": med(ratios),
        "wall_range": (min(ratios), max(ratios)),
        "cpu": med(cpu_ratios),
        "cpu_range": (min(cpu_ratios), max(cpu_ratios)),
        "bare_step": med(bare) / steps,
        "lightning_step": med(lit) / steps,
        "steps": steps,
    }


class _OneLayer(pl.LightningModule):
    """The smallest trainable model: ``Linear(1, 1)`` with an MSE loss and SGD."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return F.mse_loss(self.layer(batch[0]), batch[1])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=1e-3)


class _Batches:
    """A re-iterable list of batches (a list itself would be read as several loaders)."""

    def __init__(self, batches: list[tuple[Tensor, Tensor]]) -> None:
        self.batches = batches

    def __iter__(self) -> Any:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def lightning_floor(repeats: int, device: str, steps: int = 2000) -> tuple[float, float]:
    """Median per-step wall time (seconds) of the bare loop and of the recipe's Trainer on
    :class:`_OneLayer` with batches of one sample: Lightning's fixed cost is their difference."""
    g = torch.Generator().manual_seed(0)
    data = torch.randn(steps, 2, 1, 1, generator=g).to(device)
    batches = _Batches([(d[0], d[1]) for d in data])
    bare, lit = [], []
    for r in range(repeats):
        torch.manual_seed(r)
        bare.append(bare_epoch(_OneLayer().to(device), batches)[0] / steps)
        timer = EpochTimer()
        with tempfile.TemporaryDirectory() as tmp:
            trainer = recipe_trainer("gnn_nc", Path(tmp), timer, device)
            trainer.fit(_OneLayer(), train_dataloaders=batches)
        lit.append(timer.times[0][0] / steps)
    return statistics.median(bare), statistics.median(lit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--compile", action="store_true", help="both sides via torch.compile")
    parser.add_argument("--no-floor", action="store_true", help="skip the one-layer floor")
    parser.add_argument(
        "--batch-size", type=int, help="instead of each model's default (a what-if, not a recipe)"
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    for lg in ("pytorch_lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(lg).setLevel(logging.ERROR)
    print(f"device: {args.device}, threads: {torch.get_num_threads()}, compile: {args.compile}")
    tag = "_compiled" if args.compile else ""
    tag += f"_bs{args.batch_size}" if args.batch_size else ""
    for name in args.models:
        got = measure(name, args.repeats, args.device, args.compile, args.batch_size)
        # Wall time is what a user waits for; process CPU time is robust to other jobs on a
        # shared machine (both sides run on one thread on the CPU).
        for key, suffix in (("wall", ""), ("cpu", "_cpu_time")):
            lo, hi = got[f"{key}_range"]
            print(
                f"{name}{tag}_epoch_lightning_vs_bare_speed{suffix}: {got[key]:.3f}  "
                f"(median; range [{lo:.3f}, {hi:.3f}] over {args.repeats} repeats, "
                f"{got['steps']} steps/epoch)"
            )
        bare, lit = got["bare_step"] * 1e3, got["lightning_step"] * 1e3
        print(
            f"{name}{tag}_step_ms: bare {bare:.3f}, lightning {lit:.3f} "
            f"(+{(lit - bare) * 1e3:.0f} us per step)"
        )
    if not args.no_floor:
        bare, lit = lightning_floor(args.repeats, args.device)
        over = (lit - bare) * 1e6
        print(
            f"lightning_floor_us_per_step: {over:.0f}  (Linear(1, 1), batch 1: bare "
            f"{bare * 1e6:.0f} us, recipe Trainer {lit * 1e6:.0f} us per step)"
        )
        print(
            f"bare step needed for a 0.9 ratio at that floor: >= {9 * over / 1e3:.2f} ms "
            "(more with the model's own per-step hooks)"
        )


if __name__ == "__main__":
    main()
