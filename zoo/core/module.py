"""The base LightningModule of every zoo model."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pytorch_lightning as pl
import torch

from zoo.core.config import Interval

__all__ = ["ZooModule"]


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
    """

    zoo_name: str | None = None
    #: metric that selects the best weights (ModelCheckpoint) and its direction
    monitor: str = "val/loss"
    monitor_mode: Literal["min", "max"] = "min"
    zoo_data_config: dict[str, Any] | None = None
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

    @property
    def zoo_config(self) -> dict[str, Any]:
        """``{"model": {"name": ..., **hparams}, "data": {...}}`` — enough to rebuild both."""
        return {
            "model": {"name": self.zoo_name, **dict(self.hparams)},
            "data": dict(self.zoo_data_config or {}),
        }

    # -- evaluation: validation and test share one implementation --------------------------
    def eval_step(self, stage: Literal["val", "test"], batch: Any) -> None:
        """Update/log the metrics of ``stage`` on one batch (used by validation and test)."""
        raise NotImplementedError(f"{type(self).__name__} must implement eval_step")

    def eval_epoch_end(self, stage: Literal["val", "test"]) -> None:
        """Log what :meth:`eval_step` accumulated over the epoch (default: nothing)."""

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.eval_step("val", batch)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self.eval_step("test", batch)

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
