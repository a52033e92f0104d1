"""The figure toolkit: registry, one saver, one training helper, seed bands.

A family registers a function that *returns* its figure (a ``matplotlib.figure.Figure``,
or a name → figure mapping for several files) and never saves it::

    @register_figure("gnn_nc_depth")
    def gnn_nc_depth(*, epochs: int = 8, seeds: tuple[int, ...] = (0,)) -> Figure:
        fig, ax = new_figure(figsize=(6, 4))
        ...
        return fig

Its keyword parameters (with defaults) mirror ``recipes/configs/fig/<name>.yaml``;
:func:`run_figure` validates them, calls the function and saves what it returns with
:func:`save_figure` (``<name>.png`` for the README and ``<name>.pdf`` beside it, at
:data:`DPI`). Figures are built without pyplot (:func:`new_figure`), so nothing here selects
a matplotlib backend.

Small models of a sweep train with :func:`quick_fit` (a quiet CPU Lightning ``Trainer``) and
are scored with :func:`quick_test`; :class:`StepTrace` records a quantity during training.
Every figure takes ``seeds``; :func:`plot_seeds` draws the mean over seeds with a min–max
band and :func:`seeds_note` says so in a title.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import pytorch_lightning as pl
import torch

from zoo.core.registry import Registry

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    #: what a figure function returns: one figure, or several by file name
    FigureResult = Figure | Mapping[str, Figure]

__all__ = [
    "DPI",
    "FIGURES",
    "FORMATS",
    "StepTrace",
    "close_figure",
    "get_figure",
    "list_figures",
    "new_figure",
    "plot_seeds",
    "quick_fit",
    "quick_test",
    "register_figure",
    "run_figure",
    "save_figure",
    "seed_everything",
    "seeds_note",
]

#: resolution of every saved raster figure (PNG), dots per inch
DPI = 130
#: files written per figure: a PNG for the README and a PDF (vector) for papers
FORMATS = ("png", "pdf")

FigureFn = Callable[..., "FigureResult"]
FIGURES: Registry[FigureFn] = Registry("figure")
T = TypeVar("T")


# -- registry -----------------------------------------------------------------------------
def register_figure(name: str) -> Callable[[FigureFn], FigureFn]:
    """Decorator registering a figure function under ``name``."""
    return FIGURES.register(name)


def list_figures() -> list[str]:
    """Sorted registered figure names."""
    return FIGURES.names()


def get_figure(name: str) -> FigureFn:
    """The figure function ``name``; unknown names list the valid ones."""
    return FIGURES.get(name)


def run_figure(name: str, out_dir: str | Path, **params: Any) -> list[Path]:
    """Validate ``params`` against figure ``name``'s signature, build it, save it under
    ``out_dir`` and return the written paths.

    A returned ``Figure`` is saved as ``<name>.{png,pdf}``, a mapping as ``<key>.{png,pdf}``
    for each of its entries.

    Raises:
        ValueError: on an unknown figure, an unknown or invalid parameter, or empty ``seeds``.
        TypeError: if the figure function returns anything but figures.
    """
    from zoo.core.config import validate_kwargs

    fn = get_figure(name)
    kwargs = validate_kwargs(fn, params, what=f"figure {name!r}")
    if "seeds" in kwargs and not kwargs["seeds"]:
        raise ValueError(f"figure {name!r} needs at least one seed, got seeds={kwargs['seeds']}")
    from matplotlib.figure import Figure

    result = fn(**kwargs)
    figures = result if isinstance(result, Mapping) else {name: result}
    bad = {k: type(f).__name__ for k, f in figures.items() if not isinstance(f, Figure)}
    if bad:
        raise TypeError(f"figure {name!r} must return a Figure or a name → Figure mapping: {bad}")
    return [path for key, fig in figures.items() for path in save_figure(fig, out_dir, key)]


# -- drawing and saving -------------------------------------------------------------------
def new_figure(
    nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float], **subplots_kw: Any
) -> tuple[Figure, Any]:
    """A pyplot-free ``Figure`` (tight layout) and its axes, like ``plt.subplots``."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="tight")
    return fig, fig.subplots(nrows, ncols, **subplots_kw)


def save_figure(
    fig: Figure, out_dir: str | Path, name: str, *, formats: Sequence[str] = FORMATS
) -> list[Path]:
    """Write ``fig`` as ``out_dir/name.<fmt>`` for each format at :data:`DPI`, then close it.

    Returns:
        The written paths, in the order of ``formats``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = out_dir / f"{name}.{fmt}"
        # no creation date in the PDF: the same figure gives the same file
        metadata = {"CreationDate": None} if fmt == "pdf" else None
        fig.savefig(path, dpi=DPI, bbox_inches="tight", metadata=metadata)
        paths.append(path)
    close_figure(fig)
    return paths


def close_figure(fig: Figure) -> None:
    """Release ``fig``: drop it from pyplot when pyplot manages it (never imports pyplot)."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close(fig)


def plot_seeds(
    ax: Axes,
    x: Sequence[float],
    runs: Sequence[Sequence[float]] | torch.Tensor,
    fmt: str = "o-",
    *,
    label: str | None = None,
    **line_kw: Any,
) -> Line2D:
    """Mean over seeds of ``runs`` (seeds × len(x)) as a ``fmt`` line, min–max over seeds as
    a band (drawn only with more than one seed); returns the line."""
    v = torch.as_tensor(runs, dtype=torch.float64).reshape(-1, len(x))
    (line,) = ax.plot(x, v.mean(0).tolist(), fmt, label=label, **line_kw)
    if len(v) > 1:
        lo, hi = v.min(0).values.tolist(), v.max(0).values.tolist()
        ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, lw=0)
    return line


def seeds_note(seeds: Sequence[int]) -> str:
    """``"seed 0"`` or ``"mean of 3 seeds, band min–max"`` for a title."""
    if len(seeds) == 1:
        return f"seed {seeds[0]}"
    return f"mean of {len(seeds)} seeds, band min–max"


# -- training -----------------------------------------------------------------------------
def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (quietly), as every figure run does first."""
    pl.seed_everything(seed, workers=True, verbose=False)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence Lightning's info messages (devices, "max_steps reached") for a sweep."""
    loggers = [logging.getLogger(n) for n in ("pytorch_lightning", "lightning.pytorch")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _trainer(accelerator: str, **kwargs: Any) -> pl.Trainer:
    return pl.Trainer(
        accelerator=accelerator,
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        **kwargs,
    )


def quick_fit(
    model: pl.LightningModule,
    datamodule: pl.LightningDataModule,
    *,
    max_epochs: int | None = None,
    max_steps: int | None = None,
    seed: int = 0,
    validate: bool = False,
    accelerator: str = "cpu",
    callbacks: Sequence[pl.Callback] = (),
    **trainer_kwargs: Any,
) -> pl.Trainer:
    """Train ``model`` on ``datamodule`` with a quiet Lightning ``Trainer``; eval mode after.

    No logger, checkpointing, progress bar or sanity validation; no validation at all unless
    ``validate``. The optimiser and schedule are the model's own ``configure_optimizers``
    (for a ``ZooModule``: its ``optimizer``/``lr``/``weight_decay``/``momentum``/``scheduler``
    hyper-parameters). Files a callback writes go to a temporary directory unless
    ``default_root_dir`` is given.

    Args:
        max_epochs, max_steps: the budget; at least one is required (``max_steps`` alone
            runs as many epochs as it takes).
        seed: passed to :func:`seed_everything` before fitting (seed the model's
            initialisation yourself before building it).
        trainer_kwargs: further ``pl.Trainer`` arguments.

    Returns:
        The trainer (``trainer.callback_metrics``, ``trainer.global_step``, ...).
    """
    if max_epochs is None and max_steps is None:
        raise ValueError("quick_fit needs max_epochs or max_steps")
    seed_everything(seed)
    limits = {
        "max_epochs": max_epochs if max_epochs is not None else -1,
        "max_steps": max_steps if max_steps is not None else -1,
        "limit_val_batches": None if validate else 0,
        "callbacks": list(callbacks),
    }
    with contextlib.ExitStack() as stack:
        stack.enter_context(_quiet())
        if "default_root_dir" not in trainer_kwargs:
            trainer_kwargs["default_root_dir"] = stack.enter_context(tempfile.TemporaryDirectory())
        trainer = _trainer(accelerator, **limits, **trainer_kwargs)
        trainer.fit(model, datamodule=datamodule)
    model.eval()
    return trainer


def quick_test(
    model: pl.LightningModule, datamodule: pl.LightningDataModule, *, accelerator: str = "cpu"
) -> dict[str, float]:
    """The test metrics of ``model`` on ``datamodule``'s test split (``trainer.test(...)[0]``)."""
    with tempfile.TemporaryDirectory() as root, _quiet():
        trainer = _trainer(accelerator, default_root_dir=root)
        metrics = trainer.test(model, datamodule=datamodule, verbose=False)[0]
    return {k: float(v) for k, v in metrics.items()}


class StepTrace(pl.Callback, Generic[T]):
    """Records ``fn(module)`` (under ``torch.no_grad``) before the first step and after every
    ``every_n_steps`` optimiser steps.

    Attributes:
        steps: the optimiser step of each record (0 = before training).
        values: what ``fn`` returned at those steps.
    """

    def __init__(self, fn: Callable[[pl.LightningModule], T], every_n_steps: int = 1) -> None:
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}")
        self.fn = fn
        self.every_n_steps = every_n_steps
        self.steps: list[int] = []
        self.values: list[T] = []

    def _record(self, module: pl.LightningModule, step: int) -> None:
        with torch.no_grad():
            self.values.append(self.fn(module))
        self.steps.append(step)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._record(pl_module, trainer.global_step)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any
    ) -> None:
        step = trainer.global_step
        if step % self.every_n_steps == 0 and step != self.steps[-1]:
            self._record(pl_module, step)
