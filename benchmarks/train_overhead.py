"""Claim: a training epoch of gnn_nc through the recipe runs at ≥ 0.9× a bare PyTorch loop.

Both sides train the same model (``zoo.create("gnn_nc")``, same initial weights) on the same
SBM training graphs served by the same ``SBMDataModule`` loader, one graph per step, for one
epoch. The Lightning side uses the recipe's trainer config (``recipes/configs/trainer/cpu.yaml``
composed by Hydra) with the recipe's CSV logger and checkpoint callback, progress bar off,
validation off; the bare loop does forward → permutation-invariant MSE → backward → SGD step.
Epochs are timed from ``on_train_epoch_start`` to ``on_train_epoch_end`` (setup excluded),
alternating the two sides, and the median ratios (wall and process CPU time) are reported.

    OMP_NUM_THREADS=1 python benchmarks/train_overhead.py [--graphs 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pytorch_lightning as pl
import torch

import zoo
from zoo.graphs.models import permutation_invariant_mse

REPO = Path(__file__).resolve().parents[1]


class EpochTimer(pl.Callback):
    """Wall and process-CPU time of each training epoch (seconds)."""

    def __init__(self) -> None:
        self.times: list[tuple[float, float]] = []

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self._t = (time.perf_counter(), time.process_time())

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.times.append((time.perf_counter() - self._t[0], time.process_time() - self._t[1]))


def recipe_trainer(out: Path, timer: EpochTimer) -> pl.Trainer:
    """The recipe's Trainer (trainer=cpu, logger=csv, default callbacks minus the bar)."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    with initialize_config_dir(str(REPO / "recipes" / "configs"), version_base="1.3"):
        cfg = compose(
            "train", overrides=["model=gnn_nc", "logger=csv", "callbacks.progress_bar=null"]
        )
    tcfg = OmegaConf.to_container(cfg.trainer, resolve=False)
    tcfg.update(default_root_dir=str(out), max_epochs=1, limit_val_batches=0)
    tcfg.update(enable_model_summary=False, enable_progress_bar=False)
    logger = pl.loggers.CSVLogger(str(out), name="csv")
    ckpt = pl.callbacks.ModelCheckpoint(dirpath=str(out / "ckpt"), save_last=True)
    return instantiate(tcfg, logger=logger, callbacks=[ckpt, timer], num_sanity_val_steps=0)


def bare_epoch(
    model: zoo.core.ZooModule, loader: torch.utils.data.DataLoader
) -> tuple[float, float]:
    """One epoch of the plain loop; returns its (wall, process-CPU) time in seconds."""
    opt = model.configure_optimizers()
    model.train()
    t, c = time.perf_counter(), time.process_time()
    for data in loader:
        out = model(data)
        loss = permutation_invariant_mse(out, data.y, data.batch, int(data.num_graphs))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - t, time.process_time() - c


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graphs", type=int, default=200, help="training graphs per epoch")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)

    dm = zoo.create_datamodule("gnn_nc", n_train=args.graphs)
    dm.setup("fit")
    ratios, cpu_ratios = [], []
    for r in range(args.repeats):
        torch.manual_seed(r)
        m_bare = zoo.create("gnn_nc")
        m_pl = zoo.create("gnn_nc")
        m_pl.load_state_dict(m_bare.state_dict())
        t_bare, c_bare = bare_epoch(m_bare, dm.train_dataloader())
        timer = EpochTimer()
        with tempfile.TemporaryDirectory() as tmp:
            trainer = recipe_trainer(Path(tmp), timer)
            trainer.fit(m_pl, datamodule=dm)
        t_pl, c_pl = timer.times[0]
        ratios.append(t_bare / t_pl)
        cpu_ratios.append(c_bare / c_pl)
        print(
            f"repeat {r}: bare {t_bare:.2f} s (cpu {c_bare:.2f}), "
            f"lightning {t_pl:.2f} s (cpu {c_pl:.2f})",
            file=sys.stderr,
        )
    print(f"threads: {torch.get_num_threads()}")
    # Wall time is what a user waits for; process CPU time is robust to other jobs on a
    # shared machine (both sides run on one thread).
    print(f"gnn_nc_epoch_lightning_vs_bare_speed: {statistics.median(ratios):.3f}")
    print(f"gnn_nc_epoch_lightning_vs_bare_speed_cpu_time: {statistics.median(cpu_ratios):.3f}")


if __name__ == "__main__":
    main()
