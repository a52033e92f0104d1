"""The base synthetic LightningDataModule: seeded, generated on the training device.

Subclasses implement :meth:`SyntheticDataModule.generate`, which draws one split with a
given ``torch.Generator`` on a given device in vectorised O(output) time. The base class
derives one independent generator per split from ``seed`` (so train/val/test never share
samples and a split does not change when another split's size changes), caches splits,
and serves them without per-sample collation:

- tensor splits (a tuple ``(inputs, targets, ...)``) through :class:`TensorBatches`, an
  in-memory loader that slices device tensors and shards them across DDP ranks;
- lists of ``torch_geometric.data.Data`` through PyG's ``DataLoader`` (Lightning injects
  its ``DistributedSampler`` under DDP).

Determinism: the same seed, sizes and device type give bit-identical tensors.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Annotated, Any, Literal

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor

from zoo.core.config import Interval

__all__ = ["SPLITS", "SyntheticDataModule", "TensorBatches", "split_generator"]

SPLITS = ("train", "val", "test")
Split = Literal["train", "val", "test"]


def split_generator(seed: int, split: str, device: torch.device | str = "cpu") -> torch.Generator:
    """An independent ``torch.Generator`` on ``device`` for ``(seed, split)``.

    Seeds are derived with ``numpy.random.SeedSequence`` so ``(seed, "val")`` and
    ``(seed + 1, "train")`` never collide.
    """
    state = np.random.SeedSequence([seed, SPLITS.index(split)])
    g = torch.Generator(device=device)
    g.manual_seed(int(state.generate_state(1, dtype=np.uint64)[0] >> 1))
    return g


class TensorBatches:
    """Mini-batches sliced from tensors that already live on the device.

    A plain ``DataLoader`` would index and collate sample by sample on the CPU; slicing
    resident tensors keeps Lightning's per-step overhead close to a bare PyTorch loop.

    Args:
        tensors: tensors with a common first dimension ``n``.
        batch_size: samples per batch (the last batch may be smaller).
        shuffle: draw a fresh permutation every epoch from ``seed`` and the epoch count.
        seed: shuffling seed.
        rank, world_size: DDP shard of this process (every rank sees ``ceil(n / world)``
            samples, padding by wrap-around like ``DistributedSampler``).
    """

    def __init__(
        self,
        tensors: Sequence[Tensor],
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.tensors = tuple(tensors)
        self.n = len(self.tensors[0])
        if any(len(t) != self.n for t in self.tensors):
            raise ValueError("all tensors of a split must have the same first dimension")
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0

    def _indices(self) -> Tensor | None:
        device = self.tensors[0].device
        if not self.shuffle and self.world_size == 1:
            return None
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            idx = torch.randperm(self.n, generator=g)
        else:
            idx = torch.arange(self.n)
        if self.world_size > 1:
            per_rank = -(-self.n // self.world_size)
            idx = idx.repeat(-(-per_rank * self.world_size // self.n))[: per_rank * self.world_size]
            idx = idx[self.rank :: self.world_size]
        return idx.to(device)

    def __len__(self) -> int:
        per_rank = -(-self.n // self.world_size)
        return -(-per_rank // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        idx = self._indices()
        self.epoch += 1
        n = self.n if idx is None else len(idx)
        for start in range(0, n, self.batch_size):
            if idx is None:
                yield tuple(t[start : start + self.batch_size] for t in self.tensors)
            else:
                b = idx[start : start + self.batch_size]
                yield tuple(t[b] for t in self.tensors)


class SyntheticDataModule(pl.LightningDataModule):
    """Base class of the zoo's synthetic datamodules.

    Subclasses add typed keyword hyper-parameters, forward ``**kwargs`` here, and implement
    :meth:`generate`. ``self.hparams`` then holds the full data config.

    Args:
        seed: master seed; each split has its own derived generator.
        n_train, n_val, n_test: number of samples (or graphs) per split.
        batch_size: samples (or graphs) per step.
        device: where to generate when no trainer is attached (``"auto"``: the trainer's
            device, else CPU).
    """

    zoo_name: str = ""

    def __init__(
        self,
        *,
        seed: int = 0,
        n_train: Annotated[int, Interval(ge=1)] = 4096,
        n_val: Annotated[int, Interval(ge=1)] = 1024,
        n_test: Annotated[int, Interval(ge=1)] = 1024,
        batch_size: Annotated[int, Interval(ge=1)] = 256,
        device: str = "auto",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self._splits: dict[str, Any] = {}
        self._loaders: dict[str, Any] = {}

    # -- to implement -------------------------------------------------------------------
    def generate(
        self, split: Split, n: int, generator: torch.Generator, device: torch.device
    ) -> Any:
        """Draw ``n`` samples of ``split`` on ``device`` using only ``generator``.

        Returns a tuple of tensors ``(inputs, targets, ...)`` or a list of PyG ``Data``.
        """
        raise NotImplementedError

    # -- machinery ----------------------------------------------------------------------
    @property
    def config(self) -> dict[str, Any]:
        """The data config ``{"name": ..., **hparams}`` (as stored in ``config.json``)."""
        return {"name": self.zoo_name, **dict(self.hparams)}

    @property
    def device(self) -> torch.device:
        """The training device when attached to a trainer, else ``hparams.device``/CPU."""
        trainer = getattr(self, "trainer", None)
        if trainer is not None:
            return trainer.strategy.root_device
        return torch.device("cpu" if self.hparams.device == "auto" else self.hparams.device)

    def split(self, split: Split) -> Any:
        """The (cached) samples of ``split``, generated on :attr:`device` on first use."""
        if split not in self._splits:
            n = self.hparams[f"n_{split}"]
            device = self.device
            gen = split_generator(self.hparams.seed, split, device)
            self._splits[split] = self.generate(split, n, gen, device)
        return self._splits[split]

    def setup(self, stage: str | None = None) -> None:
        wanted = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",)}
        for s in wanted.get(stage or "", SPLITS):
            self.split(s)

    def _loader(self, split: Split, shuffle: bool) -> Any:
        if split in self._loaders:
            return self._loaders[split]
        data = self.split(split)
        bs = self.hparams.batch_size
        if isinstance(data, (list, tuple)) and data and not isinstance(data[0], Tensor):
            from torch_geometric.loader import DataLoader

            loader: Any = DataLoader(data, batch_size=bs, shuffle=shuffle)
        else:
            trainer = getattr(self, "trainer", None)
            loader = TensorBatches(
                data,
                bs,
                shuffle=shuffle,
                seed=self.hparams.seed,
                rank=trainer.global_rank if trainer is not None else 0,
                world_size=trainer.world_size if trainer is not None else 1,
            )
        self._loaders[split] = loader
        return loader

    def train_dataloader(self) -> Any:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> Any:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> Any:
        return self._loader("test", shuffle=False)
