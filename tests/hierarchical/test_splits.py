"""Held-out sequences are never training sequences: the hash partition of the ``ghm`` splits."""

from __future__ import annotations

import itertools

import pytest
import torch

import zoo
from zoo.core.checkpoint import checkpoints_root, read_config
from zoo.hierarchical.data import (
    GHMDataModule,
    contains,
    distinct,
    rhm_grammar,
    sample_part,
    sequence_key,
    split_of,
)

#: every shipped checkpoint trained on ghm data
SHIPPED = sorted(
    p.parent.name
    for p in checkpoints_root().glob("*/config.json")
    if read_config(p.parent)["data"].get("name") == "ghm"
)
HELD_OUT_SEEDS = (1, 2)


def _leaves(dm: GHMDataModule, split: str) -> torch.Tensor:
    batch = dm.split(split)
    return batch[1] if dm.hparams.task == "denoising" else batch[0]


def test_every_ghm_checkpoint_is_listed() -> None:
    assert {"convnet_bp", "unet_bp", "unet_bp_noskip", "unet_bp_sigma"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configuration_has_no_train_test_overlap(name: str) -> None:
    config = read_config(checkpoints_root() / name)
    data = {k: v for k, v in config["data"].items() if k != "device"}
    train = _leaves(zoo.create_datamodule(data), "train")
    assert len(train) == data["n_train"]
    grammar = zoo.create_datamodule(data).grammar
    for seed in (data["seed"], *HELD_OUT_SEEDS):
        dm = zoo.create_datamodule({**data, "seed": seed})
        for split in ("val", "test"):
            held = _leaves(dm, split)
            assert not contains(train, held).any(), (name, seed, split)
            part = ("train", "val", "test").index(split)
            assert (split_of(held, dm.hparams.holdout) == part).all()
    # the check has power: i.i.d. draws of the grammar do hit the training set
    iid, _ = grammar.sample(8 * data["n_train"], torch.Generator().manual_seed(7))
    assert contains(train, iid).sum() > 0
    # the card's claim: >= 100x more distinct sequences than training sequences
    assert grammar.n_sequences() >= 100 * data["n_train"]


def test_partition_fractions_and_seed_independence() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 8, (200_000, 16), generator=g)
    part = split_of(x, 0.1)
    frac = part.bincount(minlength=3).double() / len(x)
    se = (0.1 * 0.9 / len(x)) ** 0.5
    assert abs(frac[1] - 0.1) < 5 * se and abs(frac[2] - 0.1) < 5 * se
    # the key depends on the sequence only, and changing one leaf moves it
    assert torch.equal(sequence_key(x[:5]), sequence_key(x[:5].clone()))
    y = x[:1000].clone()
    y[:, 3] = (y[:, 3] + 1) % 8
    assert (sequence_key(y) != sequence_key(x[:1000])).all()


def test_sample_part_stays_in_its_part_and_follows_the_grammar() -> None:
    grammar = rhm_grammar(4, 2, 2, n_rules=2, generator=torch.Generator().manual_seed(1))
    leaves, root = sample_part(grammar, 20_000, 0, 0.2, torch.Generator().manual_seed(2))
    assert (split_of(leaves, 0.2) == 0).all()
    assert (zoo.hierarchical.bp.root_posterior(grammar, leaves).argmax(-1) == root).all()
    # within the part, sequences keep their grammar probabilities (all equal in an RHM)
    all_seqs = torch.tensor(list(itertools.product(range(4), repeat=4)))
    ok = zoo.hierarchical.bp.is_grammatical(grammar, all_seqs) & (split_of(all_seqs, 0.2) == 0)
    assert distinct(leaves) == int(ok.sum())
    counts = torch.unique(leaves, dim=0, return_counts=True)[1].double()
    expect = len(leaves) / int(ok.sum())
    assert ((counts - expect).abs() < 5 * expect**0.5).all()


def test_a_part_without_mass_is_an_error() -> None:
    grammar = rhm_grammar(2, 2, 1, n_rules=1, generator=torch.Generator().manual_seed(0))
    parts = split_of(grammar.sample(64, torch.Generator().manual_seed(0))[0], 0.1).unique()
    missing = sorted({0, 1, 2} - set(parts.tolist()))
    assert missing, "this 2-sequence grammar misses a part"
    with pytest.raises(ValueError, match="too little mass"):
        sample_part(grammar, 4, missing[0], 0.1, torch.Generator().manual_seed(0))


def test_root_classes() -> None:
    dm = zoo.create_datamodule({"name": "ghm", "n_classes": 3, "n_train": 512})
    _, root = dm.split("train")
    assert set(root.unique().tolist()) == {0, 1, 2}
    torch.testing.assert_close(dm.grammar.root_prior, torch.tensor([1 / 3] * 3 + [0.0] * 5))
    assert dm.grammar.n_sequences() == 3 * 2**15
    with pytest.raises(ValueError, match="n_classes"):
        GHMDataModule(n_classes=9)
