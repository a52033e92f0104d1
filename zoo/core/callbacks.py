"""Shared callbacks (family-agnostic): where a run writes, figures logged by it, and what makes
a run resumable exactly (:class:`ResumableModelCheckpoint`, :class:`RandomState`)."""

from __future__ import annotations

import logging
import random
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import numpy as np
import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.environments import SLURMEnvironment
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.trainer.states import TrainerFn
from pytorch_lightning.utilities.exceptions import SIGTERMException

from zoo.core.figures import close_figure, save_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "RandomState",
    "ResumableModelCheckpoint",
    "log_figure",
    "random_state",
    "run_dir",
    "set_random_state",
]

log = logging.getLogger(__name__)


def run_dir(trainer: pl.Trainer) -> Path:
    """The directory of the current run (the logger's, else ``default_root_dir``)."""
    logger = trainer.logger
    for attr in ("log_dir", "save_dir"):
        d = getattr(logger, attr, None) if logger is not None else None
        if d:
            return Path(d)
    return Path(trainer.default_root_dir)


def log_figure(trainer: pl.Trainer, fig: Figure, name: str) -> Path | None:
    """Save ``fig`` as ``<run dir>/figures/<name>.png`` and log it to W&B when W&B is used.

    Only the global-zero process writes. Returns the PNG path (``None`` on other ranks).
    """
    if not trainer.is_global_zero:
        close_figure(fig)
        return None
    (path,) = save_figure(fig, run_dir(trainer) / "figures", name, formats=("png",))
    from pytorch_lightning.loggers import WandbLogger

    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key=f"figures/{name}", images=[str(path)], step=trainer.global_step)
    return path


class ResumableModelCheckpoint(ModelCheckpoint):
    """A ``ModelCheckpoint`` whose ``last.ckpt`` a run can always resume from exactly.

    - ``last.ckpt`` is rewritten at the end of every training epoch (Lightning's own
      ``save_last`` rewrites it only in an epoch that saved a top-k checkpoint, i.e. when the
      monitor improved);
    - SIGTERM (what SLURM and most schedulers send before a kill) or SIGINT (Ctrl-C) during
      training stops the run at a clean point and saves ``last.ckpt`` there: after the current
      training batch, or, when validation follows that batch, after the next one or at the end
      of the epoch, so that no validation is cut short. A second Ctrl-C aborts at once without
      saving. With several processes (DDP) Lightning's SIGTERM handler stops every rank at the
      same batch boundary (SIGINT joins it); under SLURM the handlers are Lightning's own
      (auto-requeue on the requeue signal), left alone. The stop surfaces as Lightning's
      ``SIGTERMException``, :attr:`stop_signal` names the signal and :attr:`last_model_path`
      is the checkpoint to resume from;
    - resuming into a new ``dirpath`` keeps the best-model tracking (best score and path,
      top-k), which Lightning drops when the directory changed. Files of earlier runs are
      never deleted: Lightning only removes checkpoints inside ``dirpath``.
    """

    def __init__(self, *args: Any, save_last: bool | None = True, **kwargs: Any) -> None:
        super().__init__(*args, save_last=save_last, **kwargs)
        self.stop_signal: signal.Signals | None = None
        self._stops_itself = False

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self.stop_signal, self._stops_itself = None, False
        if SLURMEnvironment.detect() or threading.current_thread() is not threading.main_thread():
            return
        # Lightning restores the handlers it found when fit ends.
        if trainer.world_size == 1:
            self._stops_itself = True
            signal.signal(signal.SIGTERM, self._request_stop)
            signal.signal(signal.SIGINT, self._request_stop)
        elif callable(on_sigterm := signal.getsignal(signal.SIGTERM)):  # Lightning's

            def on_sigint(signum: int, frame: FrameType | None) -> None:
                self._request_stop(signum, frame)
                on_sigterm(signum, frame)

            signal.signal(signal.SIGINT, on_sigint)

    def _request_stop(self, signum: int, frame: FrameType | None) -> None:
        if self.stop_signal is not None:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt  # the second Ctrl-C: stop now, without saving
            return
        self.stop_signal = signal.Signals(signum)
        log.warning(
            "%s received: saving last.ckpt and stopping at the next clean point",
            self.stop_signal.name,
        )

    def _stop(self, trainer: pl.Trainer) -> None:
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        raise SIGTERMException

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if self.stop_signal is None or not self._stops_itself:
            return
        # Validation may follow this batch (in-epoch or global batch count): stop after it.
        every, total = trainer.val_check_batch, trainer.fit_loop.total_batch_idx
        validates = isinstance(every, int) and 0 in ((batch_idx + 1) % every, (total + 1) % every)
        if not validates and not trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            self._stop(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        if self.stop_signal is not None and self._stops_itself:
            self._stop(trainer)

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        super().on_exception(trainer, pl_module, exception)
        if not isinstance(exception, SIGTERMException):
            return
        self.stop_signal = self.stop_signal or signal.SIGTERM
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the tracking state, also when this run writes to another ``dirpath``."""
        super().load_state_dict({**state_dict, "dirpath": self.dirpath})


class RandomState(pl.Callback):
    """Saves the global random states in every checkpoint and restores them when a fit resumes.

    torch (CPU, and CUDA once initialised), numpy and Python ``random``, stored as tensors and
    plain Python values (see :func:`random_state`), so the checkpoint stays loadable with
    ``torch.load(weights_only=True)``. Evaluation from a checkpoint leaves the states alone.
    """

    key = "zoo_random_state"

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[self.key] = random_state()

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if trainer.state.fn == TrainerFn.FITTING and self.key in checkpoint:
            set_random_state(checkpoint[self.key])


def random_state() -> dict[str, Any]:
    """The global random states: ``{"torch": ByteTensor, "torch.cuda": [ByteTensor, ...],
    "numpy": {...}, "python": tuple}`` (``torch.cuda`` only once CUDA is initialised)."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(gauss),
        },
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["torch.cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_random_state(state: dict[str, Any]) -> None:
    """Restore what :func:`random_state` returned (CUDA states only onto as many devices)."""
    torch.set_rng_state(state["torch"])
    cuda = state.get("torch.cuda")
    if cuda and torch.cuda.is_available() and torch.cuda.device_count() == len(cuda):
        torch.cuda.set_rng_state_all(cuda)
    npy = state["numpy"]
    keys = npy["keys"].numpy().astype(np.uint32)
    np.random.set_state((npy["name"], keys, npy["pos"], npy["has_gauss"], npy["cached_gaussian"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
