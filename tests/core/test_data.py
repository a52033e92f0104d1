"""The base synthetic datamodule: seeded splits and device-resident batching."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from zoo.core.data import SyntheticDataModule, TensorBatches, split_generator


class _Gauss(SyntheticDataModule):
    def __init__(self, dim: int = 3, **kwargs: Any) -> None:
        super().__init__(**kwargs)

    def generate(self, split, n, generator, device):  # type: ignore[no-untyped-def]
        x = torch.randn(n, self.hparams.dim, generator=generator, device=device)
        return x, x.sum(-1)


def test_splits_are_independent_and_reproducible() -> None:
    a = _Gauss(seed=3, n_train=16, n_val=16, n_test=16)
    b = _Gauss(seed=3, n_train=16, n_val=16, n_test=16)
    c = _Gauss(seed=4, n_train=16, n_val=16, n_test=16)
    for split in ("train", "val", "test"):
        torch.testing.assert_close(a.split(split)[0], b.split(split)[0], rtol=0, atol=0)
        assert not torch.equal(a.split(split)[0], c.split(split)[0])
    assert not torch.equal(a.split("train")[0], a.split("val")[0])


def test_a_split_does_not_depend_on_other_split_sizes() -> None:
    a = _Gauss(seed=0, n_train=16, n_test=8)
    b = _Gauss(seed=0, n_train=64, n_test=8)
    torch.testing.assert_close(a.split("test")[0], b.split("test")[0], rtol=0, atol=0)


def test_split_generators_do_not_collide_across_seeds() -> None:
    draws = {
        (s, split): torch.rand(4, generator=split_generator(s, split)).tolist()
        for s in range(3)
        for split in ("train", "val", "test")
    }
    assert len({tuple(v) for v in draws.values()}) == len(draws)


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_tensor_batches_shard_every_sample(world_size: int) -> None:
    x = torch.arange(10)
    seen = []
    for rank in range(world_size):
        loader = TensorBatches(
            [x], batch_size=3, shuffle=True, seed=1, rank=rank, world_size=world_size
        )
        batches = [b[0] for b in loader]
        assert len(batches) == len(loader)
        seen.append(torch.cat(batches))
    sizes = {len(s) for s in seen}
    assert sizes == {-(-10 // world_size)}  # equal shards, as DistributedSampler pads
    assert set(torch.cat(seen).tolist()) == set(range(10))


def test_tensor_batches_reshuffle_each_epoch_deterministically() -> None:
    x = torch.arange(32)
    l1 = TensorBatches([x], batch_size=32, shuffle=True, seed=0)
    l2 = TensorBatches([x], batch_size=32, shuffle=True, seed=0)
    e1, e2 = next(iter(l1))[0], next(iter(l1))[0]
    assert not torch.equal(e1, e2)
    torch.testing.assert_close(next(iter(l2))[0], e1, rtol=0, atol=0)
    assert sorted(e1.tolist()) == list(range(32))


def test_tensor_batches_reject_ragged_tensors() -> None:
    with pytest.raises(ValueError, match="same first dimension"):
        TensorBatches([torch.zeros(3), torch.zeros(4)], batch_size=2)
