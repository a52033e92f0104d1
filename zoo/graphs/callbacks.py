"""Plot callback for neural-collapse metrics logged by the graph models.

The graph models log NC values under ``{stage}/{group}/{axis}_{index:02d}/{metric}``:

- ``gnn_nc``/``gcn_nc`` (:mod:`zoo.graphs.models`): ``val/nc_h/layer_07/nc1_log10_mean``
  (mean over graphs of log₁₀ NC1 of the layer features Hˡ), ``val/nc_ah/layer_07/...``
  (aggregated ÂHˡ), the same on ``test/``, and the last layer on the training graphs (nodes
  pooled) as ``train/nc_h/last/nc1``;
- ``spectral_sbm`` (:mod:`zoo.graphs.spectral`): ``test/nc/iter_016/nc1_log10_mean`` per
  power step.

:class:`CollapsePlotCallback` reads them from ``trainer.callback_metrics`` and draws, with
:func:`zoo.core.callbacks.log_figure` (PNG in ``<run dir>/figures/`` and a W&B image when
W&B logs the run):

- ``nc1_vs_layer`` — log₁₀ NC1 against the layer (or power-iteration) index, latest epoch,
  one line per ``stage/group``;
- ``nc1_vs_epoch`` — log₁₀ NC1 of the last layer against the epoch (training graphs and
  validation graphs).

Where a model logs the log-scale summary (``{metric}_log10_mean``, see
:func:`zoo.graphs.collapse.nc_statistics`) that is the plotted value; else log₁₀ of the
logged ``{metric}`` (pooled training values, the bounded NC2–NC4).

Lightning calls callback hooks *before* the module's hook of the same name, so values that
the module logs in ``on_train_epoch_end``/``on_validation_epoch_end`` are only visible
afterwards: an epoch's values are collected at the start of the next epoch and at the end
of training; test values at ``on_test_end``.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import pytorch_lightning as pl

from zoo.core.callbacks import log_figure
from zoo.core.figures import new_figure

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["CollapsePlotCallback", "parse_nc_metrics"]

_KEY = re.compile(
    r"^(?P<stage>train|val|test)/(?P<group>[^/]+)/(?P<axis>layer|iter|last)(?:_(?P<idx>\d+))?/(?P<metric>[^/]+)$"
)


def parse_nc_metrics(
    metrics: dict[str, Any], metric: str = "nc1"
) -> dict[str, dict[int | str, float]]:
    """log₁₀ values ``{"val/nc_h": {0: v0, 1: v1, ...}, "train/nc_h": {"last": v}}`` of
    ``metric`` from logged metrics.

    A key ``{stage}/{group}/{layer_XX|iter_XXX|last}/{metric}_log10_mean`` gives its value
    (a mean over graphs of log₁₀), a key ``.../{metric}`` the log₁₀ of its value (NaN unless
    positive and finite); the first wins where both are logged. Other keys are ignored.
    """
    out: dict[str, dict[int | str, float]] = defaultdict(dict)
    for key, value in metrics.items():
        m = _KEY.match(key)
        if m is None or m["metric"] not in (metric, f"{metric}_log10_mean"):
            continue
        idx: int | str = int(m["idx"]) if m["idx"] is not None else "last"
        series = out[f"{m['stage']}/{m['group']}"]
        if m["metric"] == metric:
            series.setdefault(idx, _log10(float(value)))
        else:
            series[idx] = float(value)
    return dict(out)


def _log10(v: float) -> float:
    return math.log10(v) if v > 0 and math.isfinite(v) else math.nan


class CollapsePlotCallback(pl.Callback):
    """Draw NC1 vs layer (latest epoch) and NC1 of the last layer vs epoch.

    Args:
        metric: which NC value to plot (``"nc1"``, ``"nc1_tilde"``, ``"nc2"``, ...).
        every_n_epochs: redraw period (the last epoch is always drawn).

    Attributes:
        history: ``[(epoch, {"val/nc_h": {layer: log₁₀ value}, ...}), ...]`` collected so far.
        paths: PNG paths written so far (global-zero process only).
    """

    def __init__(self, metric: str = "nc1", every_n_epochs: int = 1) -> None:
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be >= 1, got {every_n_epochs}")
        self.metric = metric
        self.every_n_epochs = every_n_epochs
        self.history: list[tuple[int, dict[str, dict[int | str, float]]]] = []
        self.paths: list[Path] = []
        self._pending: int | None = None  # epoch whose values are not yet collected

    # -- collection ----------------------------------------------------------------------
    def _collect(self, trainer: pl.Trainer, epoch: int, *, force_draw: bool = False) -> None:
        parsed = parse_nc_metrics(dict(trainer.callback_metrics), self.metric)
        parsed = {k: v for k, v in parsed.items() if not k.startswith("test/")}
        if not parsed:
            return
        self.history.append((epoch, parsed))
        if force_draw or (epoch + 1) % self.every_n_epochs == 0:
            self.draw(trainer)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._pending is not None:
            self._collect(trainer, self._pending)
        self._pending = trainer.current_epoch

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._pending is not None and not trainer.sanity_checking:
            self._collect(trainer, self._pending, force_draw=True)
        self._pending = None

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        parsed = parse_nc_metrics(dict(trainer.callback_metrics), self.metric)
        parsed = {k: v for k, v in parsed.items() if k.startswith("test/")}
        if parsed:
            self._draw_vs_index(trainer, parsed, f"test_{self.metric}_vs_layer", "test graphs")

    # -- drawing -------------------------------------------------------------------------
    def draw(self, trainer: pl.Trainer) -> None:
        """Write ``{metric}_vs_layer`` and ``{metric}_vs_epoch`` from :attr:`history`."""
        if not self.history:
            return
        epoch, latest = self.history[-1]
        self._draw_vs_index(trainer, latest, f"{self.metric}_vs_layer", f"epoch {epoch}")
        self._draw_vs_epoch(trainer)

    def _save(self, trainer: pl.Trainer, fig: Any, name: str) -> None:
        path = log_figure(trainer, fig, name)
        if path is not None:
            self.paths.append(path)

    def _draw_vs_index(
        self, trainer: pl.Trainer, values: dict[str, dict[int | str, float]], name: str, title: str
    ) -> None:
        from matplotlib.ticker import MaxNLocator

        series = {k: {i: v for i, v in d.items() if isinstance(i, int)} for k, d in values.items()}
        series = {k: d for k, d in series.items() if d}
        if not series:
            return
        fig, ax = new_figure(figsize=(5, 3.5))
        for label, d in sorted(series.items()):
            xs = sorted(d)
            ax.plot(xs, [d[x] for x in xs], marker="o", ms=3, label=label)
        spectral = all(k.endswith("/nc") for k in series)
        ax.set_xlabel("power iteration t" if spectral else "layer ℓ")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(f"log10 {self.metric.upper().replace('_TILDE', '~')} (mean over graphs)")
        ax.set_title(f"{self.metric} per {'iteration' if spectral else 'layer'} ({title})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        self._save(trainer, fig, name)

    def _draw_vs_epoch(self, trainer: pl.Trainer) -> None:
        from matplotlib.ticker import MaxNLocator

        lines: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for epoch, parsed in self.history:
            for label, d in parsed.items():
                if "last" in d:
                    lines[f"{label} (last layer)"].append((epoch, d["last"]))
                ints = [i for i in d if isinstance(i, int)]
                if ints:
                    top = max(ints)
                    lines[f"{label} (layer {top})"].append((epoch, d[top]))
        if not lines:
            return
        fig, ax = new_figure(figsize=(5, 3.5))
        for label, pts in sorted(lines.items()):
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, label=label)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(f"log10 {self.metric}")
        ax.set_title(
            f"{self.metric} of the last layer during training\n(val: mean over graphs of log10; "
            "train: nodes of the epoch pooled)",
            fontsize=9,
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        self._save(trainer, fig, f"{self.metric}_vs_epoch")
