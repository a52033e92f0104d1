"""The shipped checkpoints meet their targets on fresh held-out data (seed 1), vs exact BP:
U-Net MSE <= 1.10 x Bayes MSE and ConvNet accuracy >= 0.97 x BP accuracy, on grammars with
>= 100x more distinct sequences than training sequences (tests/hierarchical/test_splits.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import zoo
from zoo.hierarchical import bp


@torch.no_grad()
@pytest.mark.parametrize("name", ["unet_bp", "unet_bp_sigma"])
def test_unet_checkpoint_is_near_bayes(name: str) -> None:
    model = zoo.load(name)
    dm = zoo.create_datamodule(model, seed=1, n_test=1024)
    y, leaves, sigma, _ = dm.split("test")
    mse = ((model(y, sigma) - F.one_hot(leaves, dm.hparams.n_symbols)) ** 2).mean()
    bayes = bp.bayes_mse(dm.grammar, y, sigma, leaves).mean()
    assert 1.0 - 1e-3 < (mse / bayes).item() <= 1.10


@torch.no_grad()
def test_convnet_checkpoint_matches_bp_accuracy() -> None:
    model = zoo.load("convnet_bp")
    dm = zoo.create_datamodule(model, seed=1, n_test=1024)
    leaves, root = dm.split("test")
    acc = (model(leaves).argmax(-1) == root).float().mean()
    assert acc >= 0.97 * bp.bayes_accuracy(dm.grammar, leaves, root).mean()
