"""The base LightningModule of every zoo model."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import pytorch_lightning as pl
import torch
from torch import Tensor
from torchmetrics.aggregation import SumMetric

from zoo.core.config import Interval
from zoo.core.evaluation import RESAMPLES, Estimate, Statistic, bootstrap, flat
from zoo.core.registry import check_shared

__all__ = ["ZooModule"]

# log_estimates logs values that every process already holds (statistics of gathered
# columns): Lightning's advice to sync them, one warning per key, is about per-process values,
# and following it would all-reduce hundreds of identical scalars every evaluation epoch.
warnings.filterwarnings(
    "ignore", message=r"It is recommended to use `self\.log\('(val|test)/.*sync_dist=True\)`"
)


class ZooModule(pl.LightningModule):
    """Base class: owns the optimiser hyper-parameters and the zoo bookkeeping.

    Subclasses declare their own typed hyper-parameters and forward ``**kwargs`` here::

        class MyNet(ZooModule):
            def __init__(self, width: Annotated[int, Interval(ge=1)] = 64, **kwargs: Any):
                super().__init__(**kwargs)   # records *all* init args in self.hparams

    ``save_hyperparameters`` is called here and, walking the constructor frames, records
    the subclass's arguments too, so ``self.hparams`` is the full, JSON-able config.

    Attributes:
        zoo_name: registry name, set by ``zoo.create``/``zoo.load``.
        zoo_data_config: the data config (``{"name": ..., ...}``) the model trains on.
        zoo_metrics: measured metrics carried by a loaded checkpoint (``{}`` when fresh).
        monitor, monitor_mode: the validation metric that selects the exported weights.

    The model↔data contract: a model never touches the datamodule object. It reads the
    config of the data it runs on through :attr:`data_config`, and a model that must see the
    whole training split before its first step (a closed-form fit, an output standardisation)
    implements :meth:`on_train_split`. :meth:`setup` checks, once per stage, that an attached
    datamodule agrees with the model on the keys they share (see ``register_model(shared=)``).

    Checks before anything is built (run by ``ModelSpec.configs``, so by ``zoo.create`` and
    the recipes): a subclass may define the classmethods ``check_hparams(hp, data)``, which
    raises ``ValueError`` on inconsistent hyper-parameters, and ``footprint(hp, data)``, the
    :class:`~zoo.core.config.Footprint` of the model and one training batch of ``data``,
    computed analytically (no allocation, no random draws).

    A non-finite training loss stops the run (:meth:`on_before_backward`, which an override
    calls through ``super()``), before the step that would make the weights non-finite.
    """

    zoo_name: str | None = None
    #: metric that selects the best weights (ModelCheckpoint) and its direction
    monitor: str = "val/loss"
    monitor_mode: Literal["min", "max"] = "min"
    zoo_data_config: dict[str, Any] | None = None
    #: hyper-parameters that only change how the test stage measures (not the weights):
    #: ``recipes/eval.py +model.<key>=<value>`` may override them for one evaluation
    eval_hparams: tuple[str, ...] = ()
    #: id of the checkpoint this module was last saved as or loaded from (``zoo.save``/``load``)
    zoo_export_id: str | None = None
    zoo_metrics: dict[str, float]

    def __init__(
        self,
        *,
        optimizer: Literal["adam", "adamw", "sgd"] = "adam",
        lr: Annotated[float, Interval(gt=0)] = 1e-3,
        weight_decay: Annotated[float, Interval(ge=0)] = 0.0,
        momentum: Annotated[float, Interval(ge=0, lt=1)] = 0.9,
        scheduler: Literal["none", "cosine"] = "none",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.zoo_metrics = {}
        #: per stage, the (columns, statistics) groups of the last evaluation (for pooling)
        self.zoo_eval: dict[str, list[tuple[dict[str, Tensor], dict[str, Statistic]]]] = {}
        self._attached_data_config: dict[str, Any] | None = None
        #: per-epoch training aggregates of :meth:`log_train` (not submodules: no state_dict
        #: keys, created on the training device at the first flush)
        self._train_aggregates: dict[str, _EpochAggregate] = {}

    # -- the model↔data contract -----------------------------------------------------------
    @property
    def data_config(self) -> dict[str, Any]:
        """Config of the data the model runs on: the attached datamodule's while a trainer
        runs one (e.g. fresh evaluation data), else the training data's :attr:`zoo_data_config`.
        """
        return dict(self._attached_data_config or self.zoo_data_config or {})

    def _datamodule(self) -> Any:
        trainer = self._trainer
        return getattr(trainer, "datamodule", None) if trainer is not None else None

    def setup(self, stage: str) -> None:
        """Check the attached datamodule against the shared keys and record its config.

        Subclasses that override ``setup`` call ``super().setup(stage)``.
        """
        config = getattr(self._datamodule(), "config", None)
        self._attached_data_config = dict(config) if config else None
        if config:
            check_shared(self.zoo_name, self.hparams, config)
            if not self.zoo_data_config:
                self.zoo_data_config = dict(config)

    def teardown(self, stage: str) -> None:
        self._attached_data_config = None

    def on_train_split(self, split: tuple[Tensor, ...]) -> None:
        """Called once at the start of training with the whole training split
        ``(inputs, targets, ...)`` on the training device; default: nothing."""

    def on_train_start(self) -> None:
        if type(self).on_train_split is ZooModule.on_train_split:
            return
        dm = self._datamodule()
        if not hasattr(dm, "split"):
            raise ValueError(
                f"{type(self).__name__} fits on the whole training split: train it with a zoo "
                "datamodule (zoo.create_datamodule(model))"
            )
        self.on_train_split(tuple(t.to(self.device) for t in dm.split("train")))

    @property
    def zoo_config(self) -> dict[str, Any]:
        """``{"model": {"name": ..., **hparams}, "data": {...}}`` — enough to rebuild both."""
        return {
            "model": {"name": self.zoo_name, **dict(self.hparams)},
            "data": dict(self.zoo_data_config or {}),
        }

    def on_before_backward(self, loss: Tensor) -> None:
        """Raise ``FloatingPointError`` if the training ``loss`` is NaN or ±inf.

        Runs before the backward pass, so the weights (and any checkpoint written when the
        run stops) are those of the last finite step. Under DDP every rank takes the same
        decision, so all of them stop.
        """
        finite = bool(torch.isfinite(loss.detach()).all())
        trainer = self._trainer
        if trainer is not None:
            finite = trainer.strategy.reduce_boolean_decision(finite, all=True)
        if finite:
            return
        where = f"epoch {self.current_epoch}, global step {self.global_step}"
        lr = self.hparams.get("lr")
        raise FloatingPointError(
            f"{type(self).__name__}: the training loss is not finite "
            f"({float(loss.detach().sum())!r}) at {where}: training stopped. Lower the learning "
            f"rate (model.lr={lr}), clip gradients (trainer.gradient_clip_val=1.0) or check the "
            "data"
        )

    # -- training-step logging: per epoch, without per-step self.log -----------------------
    def log_train(
        self,
        name: str,
        value: Tensor,
        *,
        weight: float | Tensor = 1.0,
        reduce: Literal["mean", "sum"] = "mean",
        prog_bar: bool = False,
        live: bool = False,
    ) -> None:
        """Add one training step's ``value`` (a scalar) to the epoch's ``train/<name>``.

        The weighted mean (or sum) over the epoch's steps, gathered across DDP ranks by a
        torchmetrics aggregator, is logged once when the epoch ends. A per-step ``self.log``
        costs about a millisecond of Lightning bookkeeping, and even a per-step torchmetrics
        ``update`` 15–25 µs: for the zoo's tiny models a sizeable part of the step. So a step
        only appends ``value`` to a list (see :class:`_EpochAggregate`): no sync with the
        device, no NaN check (a non-finite loss already stops the run, see
        :meth:`on_before_backward`). With ``live`` (for long epochs) the step's value is also
        logged as ``train/<name>_step``, on the trainer's logging steps only (every
        ``log_every_n_steps``) and in the bar; outside a trainer (a plain loop calling
        ``training_step``) there is nothing to log it to.
        """
        trainer = self._trainer
        if live and trainer is not None and (self.global_step + 1) % trainer.log_every_n_steps == 0:
            self.log(f"train/{name}_step", value, on_step=True, on_epoch=False, prog_bar=True)
        found = self._train_aggregates.get(name)
        if found is None:
            found = self._train_aggregates[name] = _EpochAggregate(reduce, prog_bar)
        found.add(value.detach(), weight)

    def on_train_epoch_end(self) -> None:
        """Log the epoch aggregates of :meth:`log_train`; overrides call ``super()``."""
        for name, aggregate in self._train_aggregates.items():
            total = aggregate.compute()  # gathered across ranks: no sync_dist
            if total is not None:
                self.log(f"train/{name}", total, prog_bar=aggregate.prog_bar, sync_dist=False)

    def transfer_batch_to_device(
        self, batch: Any, device: torch.device, dataloader_idx: int
    ) -> Any:
        """A tuple of tensors already on ``device`` (the zoo datamodules generate on the
        training device) is returned as it is: Lightning's generic walk over the batch costs
        more than a tiny model's step. Anything else is moved by Lightning."""
        if isinstance(batch, (tuple, list)) and all(
            isinstance(t, Tensor) and t.device == device for t in batch
        ):
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    # -- evaluation: validation and test share one implementation --------------------------
    def eval_step(self, stage: Literal["val", "test"], batch: Any) -> None:
        """Update/log the metrics of ``stage`` on one batch (used by validation and test)."""
        raise NotImplementedError(f"{type(self).__name__} must implement eval_step")

    def eval_epoch_end(self, stage: Literal["val", "test"]) -> None:
        """Log what :meth:`eval_step` accumulated over the epoch (default: nothing)."""

    def log_estimates(
        self,
        stage: str,
        columns: Mapping[str, Tensor],
        statistics: Mapping[str, Statistic],
        *,
        prog_bar: str | None = None,
        interval: bool | None = None,
    ) -> dict[str, Estimate]:
        """Log ``{stage}/{name}`` for every statistic of the per-example ``columns``.

        With ``interval`` (default: on the test stage) each metric also gets its bootstrap
        interval and count, logged as ``{stage}/{name}_ci_lo``, ``_ci_hi`` and ``_n`` (see
        :mod:`zoo.core.evaluation`); the columns and statistics are kept in
        ``self.zoo_eval[stage]`` (one group per call, cleared when the stage's epoch starts)
        so that evaluations on several seeds can be pooled. Columns must already hold every
        process's examples (a :class:`~zoo.core.evaluation.Columns` metric's ``compute``
        does that).

        Args:
            stage: ``"val"`` or ``"test"``.
            columns: ``{name: (n,)}``, one row per evaluated example.
            statistics: ``{metric name: Statistic}`` of those columns.
            prog_bar: the metric shown in the progress bar.
        """
        if interval is None:
            interval = stage == "test"
        columns = {k: v.reshape(-1) for k, v in columns.items()}  # a 0-d column: one example
        if not columns or all(len(v) == 0 for v in columns.values()):
            return {}
        found = bootstrap(columns, statistics, resamples=RESAMPLES if interval else 0)
        logged: dict[str, float] = {}
        for name, est in found.items():
            key = f"{stage}/{name}"
            logged.update(flat(key, est) if interval else {key: est.value})
        shown = f"{stage}/{prog_bar}"
        if shown in logged:
            self.log(shown, float(logged.pop(shown)), prog_bar=True, sync_dist=False)
        # Values are already every process's: no sync.
        self.log_dict({k: float(v) for k, v in logged.items()}, sync_dist=False)
        if interval:
            cols = {k: v.detach().cpu() for k, v in columns.items()}
            self.zoo_eval.setdefault(stage, []).append((cols, dict(statistics)))
        return found

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.eval_step("val", batch)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self.eval_step("test", batch)

    def on_validation_epoch_start(self) -> None:
        self.zoo_eval.pop("val", None)

    def on_test_epoch_start(self) -> None:
        self.zoo_eval.pop("test", None)

    def on_validation_epoch_end(self) -> None:
        self.eval_epoch_end("val")

    def on_test_epoch_end(self) -> None:
        self.eval_epoch_end("test")

    def predict_step(self, batch: Any, batch_idx: int = 0) -> Any:
        """Outputs on one datamodule batch: ``self(inputs)`` for ``(inputs, targets, ...)``
        tuples, ``self(batch)`` for PyG batches; override when ``forward`` takes more.
        """
        inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(inputs)

    def configure_optimizers(self) -> Any:
        """The optimiser named by the hyper-parameters, with an optional cosine schedule."""
        hp = self.hparams
        params = [p for p in self.parameters() if p.requires_grad]
        if not params:
            return None
        if hp.optimizer == "sgd":
            opt: torch.optim.Optimizer = torch.optim.SGD(
                params, lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay
            )
        elif hp.optimizer == "adamw":
            opt = torch.optim.AdamW(params, lr=hp.lr, weight_decay=hp.weight_decay)
        else:
            opt = torch.optim.Adam(params, lr=hp.lr, weight_decay=hp.weight_decay)
        if hp.scheduler == "cosine" and self.trainer is not None:
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(
                opt, T_max=max(1, int(self.trainer.estimated_stepping_batches))
            )
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
        return opt


class _EpochAggregate:
    """The steps' values of one :meth:`ZooModule.log_train` key over a training epoch.

    A step appends its 0-d value (and weight) to a list, about 0.1 µs; every :attr:`flush_every`
    steps, and when the epoch ends, the list is folded into torchmetrics ``SumMetric`` states
    by one batched ``update``. torchmetrics keeps the reduction and the DDP gather; it lacks a
    cheap per-step path (its ``update`` costs 15–25 µs of Python per call, more than a tenth
    of the smallest zoo steps), which is all this class adds. A weighted mean is the ratio of
    two sums (Σ w·v / Σ w) rather than a ``MeanMetric``: with ``nan_strategy="disable"`` (no
    host sync per update) ``MeanMetric`` replaces the weights by ones (torchmetrics issue
    #3434), and the other strategies drop NaNs instead of showing them. Memory stays bounded
    by ``flush_every`` values.
    """

    #: steps between two folds into the metric
    flush_every = 1024

    def __init__(self, reduce: Literal["mean", "sum"], prog_bar: bool) -> None:
        self.reduce = reduce
        self.prog_bar = prog_bar
        #: Σ w·v and, for a mean, Σ w (created on the values' device at the first fold)
        self.sums: list[SumMetric] = []
        self.values: list[Tensor] = []
        self.weights: list[float | Tensor] = []

    def add(self, value: Tensor, weight: float | Tensor) -> None:
        """Append one step's scalar ``value`` (any one-element tensor) and its weight."""
        self.values.append(value)
        self.weights.append(weight)
        if len(self.values) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        """Fold the appended values into the sums."""
        if not self.values:
            return
        values = torch.stack([v.reshape(()) for v in self.values])
        if not self.sums:
            n = 2 if self.reduce == "mean" else 1
            self.sums = [SumMetric(nan_strategy="disable").to(values.device) for _ in range(n)]
        if self.reduce == "mean":
            w = self.weights
            weights = (
                torch.stack([torch.as_tensor(x).reshape(()) for x in w]).to(values)
                if any(isinstance(x, Tensor) for x in w)
                else torch.tensor(w, dtype=values.dtype, device=values.device)
            )
            self.sums[0].update(values * weights)
            self.sums[1].update(weights)
        else:
            self.sums[0].update(values)
        self.values, self.weights = [], []

    def compute(self) -> Tensor | None:
        """The epoch's weighted mean (or sum), gathered across ranks, then reset; ``None``
        when no step added a value."""
        self.flush()
        if not self.sums or not self.sums[0].update_count:
            return None
        totals = [s.compute() for s in self.sums]
        for s in self.sums:
            s.reset()
        return totals[0] / totals[1] if self.reduce == "mean" else totals[0]
