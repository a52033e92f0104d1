"""benchmarks/train_overhead.py compares like with like: its bare loop and the recipe's Trainer
train the same weights from the same start on the same batches (timings are not tested)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import zoo
from tests.common import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
import train_overhead  # a script: benchmarks/ is not a package


@pytest.mark.parametrize(("name", "n_train"), [("slater", 512), ("gnn_nc", 4)])
def test_bare_loop_and_recipe_trainer_reach_the_same_weights(
    name: str, n_train: int, tmp_path: Path
) -> None:
    dm = zoo.create_datamodule(name, n_train=n_train, n_val=4, n_test=4, device="cpu")
    dm.setup("fit")
    torch.manual_seed(0)
    bare = zoo.create(name)
    lit = zoo.create(name)
    lit.load_state_dict(bare.state_dict())
    bare.zoo_data_config = lit.zoo_data_config = dm.config
    before = {k: v.clone() for k, v in bare.state_dict().items()}
    # graph loaders draw their shuffle from the global generator when a pass starts
    torch.manual_seed(1)
    train_overhead.bare_epoch(bare, dm.train_dataloader())
    timer = train_overhead.EpochTimer()
    trainer = train_overhead.recipe_trainer(name, tmp_path, timer, "cpu")
    torch.manual_seed(1)
    trainer.fit(lit, datamodule=dm)
    assert len(timer.times) == 1
    moved = False
    for key, value in bare.state_dict().items():
        torch.testing.assert_close(lit.state_dict()[key], value, rtol=1e-6, atol=1e-7)
        moved |= value.is_floating_point() and not torch.equal(value, before[key])
    assert moved  # both sides trained away from the common start
