"""Shared callback helpers (family-agnostic): where a run writes, and figures logged by it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from zoo.core.figures import close_figure, save_figure

if TYPE_CHECKING:
    import pytorch_lightning as pl
    from matplotlib.figure import Figure

__all__ = ["log_figure", "run_dir"]


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
