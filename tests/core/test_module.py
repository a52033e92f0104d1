"""ZooModule's per-epoch training aggregates (``log_train``)."""

from __future__ import annotations

from typing import Any

import pytest
import pytorch_lightning as pl
import torch

import zoo
from tests.common import quiet_trainer
from zoo.core.module import _EpochAggregate


@pytest.mark.parametrize("flush_every", [1, 2, 1024])
def test_epoch_mean_is_the_weighted_mean_across_flushes(
    flush_every: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_EpochAggregate, "flush_every", flush_every)
    values = [1.0, 2.0, 3.0, 4.0, 5.0]
    for weights in ([1, 1, 2, 1, 3], [torch.tensor(w) for w in (1, 1, 2, 1, 3)]):
        agg = _EpochAggregate("mean", prog_bar=False)
        for v, w in zip(values, weights):
            agg.add(torch.tensor(v), w)
        assert len(agg.values) == len(values) % flush_every  # the rest was folded
        total = agg.compute()
        assert total is not None
        assert float(total) == pytest.approx((1 + 2 + 6 + 4 + 15) / 8)
        assert agg.compute() is None  # reset: nothing added since


def test_epoch_sum_and_empty_epoch() -> None:
    agg = _EpochAggregate("sum", prog_bar=False)
    assert agg.compute() is None
    for v in (0.0, 1.0, 1.0):
        agg.add(torch.tensor(v), 1.0)
    assert float(agg.compute()) == 2.0  # type: ignore[arg-type]


class _StepLosses(pl.Callback):
    """The loss each training step returned, and the batch's size."""

    def __init__(self) -> None:
        self.steps: list[tuple[float, int]] = []

    def on_train_batch_end(
        self, trainer: pl.Trainer, module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.steps.append((float(outputs["loss"]), len(batch[0])))


def test_logged_train_loss_is_the_size_weighted_mean_of_the_steps(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through a Trainer: 3 batches of 4, 4 and 2 samples, folded every 2 steps."""
    monkeypatch.setattr(_EpochAggregate, "flush_every", 2)
    torch.manual_seed(0)
    model = zoo.create("rf_attention", heads=4)
    dm = zoo.create_datamodule(model, n_train=10, n_val=4, n_test=4, batch_size=4)
    steps = _StepLosses()
    trainer = quiet_trainer(
        max_epochs=1, limit_val_batches=0, callbacks=[steps], default_root_dir=tmp_path
    )
    trainer.fit(model, datamodule=dm)
    assert [n for _, n in steps.steps] == [4, 4, 2]
    expected = sum(loss * n for loss, n in steps.steps) / 10
    logged = float(trainer.callback_metrics["train/loss"])
    assert logged == pytest.approx(expected, rel=1e-6)
