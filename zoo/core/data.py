"""The base synthetic LightningDataModule: seeded, generated on the training device.

Subclasses implement :meth:`SyntheticDataModule.generate`, which draws one split with a
given ``torch.Generator`` on a given device in vectorised O(output) time. The base class
derives one independent generator per split from ``seed`` (so train/val/test never share
samples and a split does not change when another split's size changes), caches splits,
and serves them without per-sample collation:

- tensor splits (a tuple ``(inputs, targets, ...)``) through :class:`TensorBatches`, an
  in-memory loader that slices device tensors and shards them across DDP ranks;
- lists of ``torch_geometric.data.Data`` the same way, collated per step into a PyG ``Batch``.

Determinism: the same seed, sizes and device type give bit-identical tensors; the training
batches of epoch ``e`` depend only on the seed and ``e`` (the trainer's epoch), and the loaders
are resumable mid-epoch, so a resumed run sees exactly the batches of an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Annotated, Any, Literal

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor

from zoo.core.config import Device, Interval, Seed

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

    The batches of an epoch depend only on ``seed`` and the epoch number, never on how many
    passes came before, and the loader is resumable: :meth:`state_dict` (which Lightning stores
    in its checkpoints) records the epoch in progress and the batches it served, and after
    :meth:`load_state_dict` the next pass over that epoch continues with the following batch.

    Args:
        tensors: tensors with a common first dimension ``n``.
        batch_size: samples per batch (the last batch may be smaller).
        shuffle: draw a fresh permutation every epoch from ``seed`` and the epoch number.
        seed: shuffling seed.
        rank, world_size: DDP shard of this process (every rank sees ``ceil(n / world)``
            samples, padding by wrap-around like ``DistributedSampler``).
        epoch: called when a pass starts, returns the epoch it serves (a datamodule passes
            its trainer's ``current_epoch``, restored on resume); ``None`` (or a source that
            returns ``None``) counts the passes instead.
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
        epoch: Callable[[], int | None] | None = None,
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
        self.epoch_source = epoch
        self.epoch = 0  # the epoch of the next pass when there is no source
        self._progress = {"epoch": 0, "batches": 0}
        self._resume: dict[str, int] | None = None

    def _permutation(self, epoch: int) -> Tensor:
        """The shuffled order of ``epoch``: a permutation of ``range(n)`` from seed and epoch."""
        g = torch.Generator().manual_seed((self.seed * 100_003 + epoch) % 2**64)  # any valid seed
        return torch.randperm(self.n, generator=g)

    def _indices(self, epoch: int) -> Tensor | None:
        device = self.tensors[0].device
        if not self.shuffle and self.world_size == 1:
            return None
        idx = self._permutation(epoch) if self.shuffle else torch.arange(self.n)
        if self.world_size > 1:
            per_rank = -(-self.n // self.world_size)
            idx = idx.repeat(-(-per_rank * self.world_size // self.n))[: per_rank * self.world_size]
            idx = idx[self.rank :: self.world_size]
        return idx.to(device)

    def _take(self, rows: slice | Tensor) -> Any:
        """The batch of ``rows``: a slice or a 1-D index tensor."""
        return tuple(t[rows] for t in self.tensors)

    def __len__(self) -> int:
        per_rank = -(-self.n // self.world_size)
        return -(-per_rank // self.batch_size)

    def epoch_batches(self, epoch: int) -> Iterator[Any]:
        """Every batch of ``epoch`` in order (of the pass that started last); no state changes."""
        idx = self._indices(epoch)
        n = self.n if idx is None else len(idx)
        for start in range(0, n, self.batch_size):
            if idx is None:
                yield self._take(slice(start, start + self.batch_size))
            else:
                yield self._take(idx[start : start + self.batch_size])

    def serve(self, batches_of: Callable[[int], Iterable[Any]]) -> Iterator[Any]:
        """One pass over ``batches_of(epoch)``, recording progress for :meth:`state_dict`.

        The epoch is read from the source when the first batch is requested; a pass over the
        epoch of a loaded state skips the batches that state had already served.
        """
        source = self.epoch_source() if self.epoch_source is not None else None
        epoch = self.epoch if source is None else int(source)
        resume, self._resume = self._resume, None
        if resume is not None and resume["epoch"] != epoch:
            resume = None
        skip = resume["batches"] if resume is not None else 0
        self.epoch = epoch + 1
        self._progress = {**self._start_pass(resume), "epoch": epoch, "batches": skip}
        for i, batch in enumerate(batches_of(epoch)):
            if i >= skip:
                self._progress["batches"] = i + 1
                yield batch

    def _start_pass(self, resume: dict[str, Any] | None) -> dict[str, Any]:
        """Called as a pass starts (``resume``: the loaded state it continues); returns what
        :meth:`state_dict` must keep besides the epoch and the batch count. Default: nothing."""
        return {}

    def __iter__(self) -> Iterator[Any]:
        return self.serve(self.epoch_batches)

    def state_dict(self) -> dict[str, Any]:
        """``{"epoch": e, "batches": k, ...}``: the last pass served ``k`` batches of ``e``."""
        return dict(self._progress)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resume: the next pass over ``state_dict["epoch"]`` starts after its served batches."""
        epoch, batches = int(state_dict["epoch"]), int(state_dict["batches"])
        self._resume = {**state_dict, "epoch": epoch, "batches": batches}
        self.epoch = epoch


class _GraphBatches(TensorBatches):
    """PyG ``Data`` lists, collated into one ``torch_geometric.data.Batch`` per step.

    A drop-in for ``torch_geometric.loader.DataLoader``: each pass takes the same draws from
    the global torch generator (one for the loader's base seed and, when shuffling on one
    process, one that seeds the permutation, as ``RandomSampler`` does), so graph runs keep
    their trajectories; with several processes the permutation comes from seed and epoch
    (like ``DistributedSampler``) and each rank takes its shard. Unlike the DataLoader it
    resumes mid-epoch: the permutation's seed is part of :meth:`state_dict`, and
    :class:`~zoo.core.callbacks.RandomState` restores the global generator.
    """

    def __init__(self, graphs: Sequence[Any], batch_size: int, **kwargs: Any) -> None:
        super().__init__([torch.arange(len(graphs))], batch_size, **kwargs)
        self.graphs = list(graphs)
        self._perm_seed: int | None = None

    def _start_pass(self, resume: dict[str, Any] | None) -> dict[str, Any]:
        if resume is None or "perm_seed" not in resume:
            torch.empty((), dtype=torch.int64).random_()  # the DataLoader's base seed
            drawn = self.shuffle and self.world_size == 1
            self._perm_seed = int(torch.empty((), dtype=torch.int64).random_()) if drawn else None
        else:
            self._perm_seed = resume["perm_seed"]
        return {"perm_seed": self._perm_seed}

    def _permutation(self, epoch: int) -> Tensor:
        if self._perm_seed is None:
            return super()._permutation(epoch)
        return torch.randperm(self.n, generator=torch.Generator().manual_seed(self._perm_seed))

    def _take(self, rows: slice | Tensor) -> Any:
        from torch_geometric.data import Batch

        return Batch.from_data_list([self.graphs[i] for i in self.tensors[0][rows].tolist()])


class SyntheticDataModule(pl.LightningDataModule):
    """Base class of the zoo's synthetic datamodules.

    Subclasses add typed keyword hyper-parameters, forward ``**kwargs`` here, and implement
    :meth:`generate`. ``self.hparams`` then holds the full data config.

    Args:
        seed: master seed in [0, 2**63); each split has its own derived generator.
        n_train, n_val, n_test: number of samples (or graphs) per split.
        batch_size: samples (or graphs) per step.
        device: where to generate when no trainer is attached (``"auto"``: the trainer's
            device, else CPU); a device this machine lacks is refused.
    """

    zoo_name: str = ""

    def __init__(
        self,
        *,
        seed: Seed = 0,
        n_train: Annotated[int, Interval(ge=1)] = 4096,
        n_val: Annotated[int, Interval(ge=1)] = 1024,
        n_test: Annotated[int, Interval(ge=1)] = 1024,
        batch_size: Annotated[int, Interval(ge=1)] = 256,
        device: Device = "auto",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self._splits: dict[str, Any] = {}
        self._loaders: dict[str, Any] = {}
        self._train_progress: dict[str, int] | None = None  # of a loaded checkpoint

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
        graphs = isinstance(data, (list, tuple)) and bool(data) and not isinstance(data[0], Tensor)
        trainer = getattr(self, "trainer", None)
        loader = (_GraphBatches if graphs else TensorBatches)(
            data,
            self.hparams.batch_size,
            shuffle=shuffle,
            seed=self.hparams.seed,
            rank=trainer.global_rank if trainer is not None else 0,
            world_size=trainer.world_size if trainer is not None else 1,
            epoch=self.trainer_epoch,
        )
        return self._cache_loader(split, loader)

    def _cache_loader(self, split: Split, loader: TensorBatches) -> TensorBatches:
        """Cache ``loader`` of ``split``; a training loader takes a loaded checkpoint's progress."""
        if split == "train" and self._train_progress is not None:
            loader.load_state_dict(self._train_progress)
            self._train_progress = None
        self._loaders[split] = loader
        return loader

    def trainer_epoch(self) -> int | None:
        """The attached trainer's ``current_epoch`` (restored on resume), else ``None``."""
        trainer = getattr(self, "trainer", None)
        return None if trainer is None else trainer.current_epoch

    def state_dict(self) -> dict[str, Any]:
        """``{"train_loader": {"epoch", "batches"}}``: the training loader's progress.

        Lightning saves it in every checkpoint and hands it back to :meth:`load_state_dict`
        before anything else is set up, so a resumed fit continues after the last batch trained
        (Lightning's own loader-state restore is skipped when the optimiser configuration
        already asked for the loader, e.g. through ``trainer.estimated_stepping_batches``).
        """
        loader = self._loaders.get("train")
        return {} if loader is None else {"train_loader": loader.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resume the training loader from :meth:`state_dict` (when fitting; not for test)."""
        trainer = getattr(self, "trainer", None)
        progress = state_dict.get("train_loader")
        if progress is None or (trainer is not None and trainer.state.fn != "fit"):
            return
        if "train" in self._loaders:
            self._loaders["train"].load_state_dict(progress)
        else:
            self._train_progress = dict(progress)

    def train_dataloader(self) -> Any:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> Any:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> Any:
        return self._loader("test", shuffle=False)
