"""The ``sets`` datamodule: sets X ∈ R^{n×N×D} from a registered sampler, labelled by a
registered exact target (see :mod:`zoo.sets.samplers` and :mod:`zoo.sets.targets`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Annotated, Any

import numpy as np
import torch
from torch import Tensor

from zoo.core.config import Footprint, Interval, validate_kwargs
from zoo.core.data import SPLITS, SyntheticDataModule, TensorBatches
from zoo.core.registry import register_datamodule
from zoo.sets.samplers import SAMPLERS, sample_sets
from zoo.sets.targets import evaluate_target, get_target

__all__ = ["SetDataModule"]


class _ResampledBatches(TensorBatches):
    """Train batches of fresh samples each epoch (epoch 0 serves the cached split).

    Epoch e ≥ 1 draws ``n_train`` new samples with a generator seeded by
    ``(seed, "train", e)``, e the trainer's epoch: runs stay deterministic, a resumed run
    sees the samples of an uninterrupted one, and no training set is ever reused.
    """

    def __init__(self, dm: SetDataModule, rank: int, world: int) -> None:
        super().__init__(
            dm.split("train"),
            dm.hparams.batch_size,
            rank=rank,
            world_size=world,
            epoch=dm.trainer_epoch,
        )
        self.dm = dm

    def epoch_batches(self, epoch: int) -> Iterator[tuple[Tensor, ...]]:
        data = self.dm.split("train") if epoch == 0 else self.dm.fresh_train(epoch)
        batches = TensorBatches(data, self.batch_size, rank=self.rank, world_size=self.world_size)
        yield from batches.epoch_batches(epoch)


@register_datamodule("sets")
class SetDataModule(SyntheticDataModule):
    """Sets X: (n, N, D) from a registered sampler, labels y = target(X): (n,) or (n, k).

    Args:
        n_set: N, points per set.
        dim: D, dimension of each point.
        sampler: registered input sampler (``gaussian``, ``sphere``, ``line``, ``cue``).
        sampler_params: keyword parameters of the sampler (e.g. ``{"std": 0.5}``).
        target: registered target name (see :func:`list_targets`).
        target_params: keyword parameters of the target (e.g. ``{"lam": 1.5}``).
        noise_std: std of Gaussian label noise added to the *training* split only.
        resample: draw a fresh training set every epoch (online SGD).
        **kwargs: ``seed``, ``n_train``, ``n_val``, ``n_test``, ``batch_size``, ``device``.
    """

    def __init__(
        self,
        n_set: Annotated[int, Interval(ge=1)] = 8,
        dim: Annotated[int, Interval(ge=1)] = 2,
        sampler: str = "sphere",
        sampler_params: dict | None = None,
        target: str = "pairwise_energy",
        target_params: dict | None = None,
        noise_std: Annotated[float, Interval(ge=0)] = 0.0,
        resample: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        # unknown names, unknown or invalid parameters fail here, not when data is drawn
        validate_kwargs(
            SAMPLERS.get(sampler),
            sampler_params or {},
            what=f"sampler {sampler!r} (sampler_params)",
            fixed=("n", "n_set", "dim", "generator", "device"),
        )
        self.target_spec = get_target(target)
        validate_kwargs(
            self.target_spec.fn,
            target_params or {},
            what=f"target {target!r} (target_params)",
            fixed=("x",),
        )
        self.sampler_params = dict(sampler_params or {})
        self.target_params = dict(target_params or {})

    @classmethod
    def footprint(cls, cfg: Mapping[str, Any]) -> Footprint:
        """Memory of all splits: x (n, N, D) and labels of at most that size, float32; drawing
        the largest split needs a float64 copy of x plus the (n, N, N) float64 temporaries of
        pairwise targets and samplers (~24 bytes per point-pair and per coordinate)."""
        n, d = cfg["n_set"], cfg["dim"]
        samples = sum(cfg[f"n_{split}"] for split in SPLITS)
        largest = max(cfg[f"n_{split}"] for split in SPLITS)
        return Footprint(other=samples * n * d * 8 + largest * (24 * n * d + 24 * n * n))

    @property
    def symmetry(self) -> str:
        """Symmetry kind of the target (``symmetric``/``antisymmetric``/``invariant_in_keys``)."""
        return self.target_spec.symmetry

    def sample_x(self, n: int, generator: torch.Generator, device: torch.device | str) -> Tensor:
        """x: (n, N, D) from the configured sampler."""
        hp = self.hparams
        return sample_sets(
            hp.sampler, n, hp.n_set, hp.dim, generator, device, **self.sampler_params
        )

    def target(self, x: Tensor) -> Tensor:
        """Exact target at x: (B, N, D) → (B,) or (B, k), evaluated in float64."""
        y = evaluate_target(self.hparams.target, x.double(), **self.target_params)
        return y.to(x.dtype)

    def generate(
        self, split: str, n: int, generator: torch.Generator, device: torch.device
    ) -> tuple[Tensor, Tensor]:
        """(x: (n, N, D), y: (n,) or (n, k)); training labels get ``noise_std`` noise."""
        x = self.sample_x(n, generator, device)
        y = self.target(x)
        if split == "train" and self.hparams.noise_std > 0:
            noise = torch.randn(y.shape, generator=generator, device=device, dtype=y.dtype)
            y = y + self.hparams.noise_std * noise
        return x, y

    def fresh_train(self, epoch: int) -> tuple[Tensor, Tensor]:
        """A new training set for ``epoch`` (seeded by (seed, "train", epoch))."""
        device = self.device
        state = np.random.SeedSequence([self.hparams.seed, 0, epoch])
        g = torch.Generator(device=device)
        g.manual_seed(int(state.generate_state(1, dtype=np.uint64)[0] >> 1))
        return self.generate("train", self.hparams.n_train, g, device)

    def train_dataloader(self) -> Any:
        if not self.hparams.resample:
            return super().train_dataloader()
        if "train" not in self._loaders:
            trainer = getattr(self, "trainer", None)
            loader = _ResampledBatches(
                self,
                trainer.global_rank if trainer is not None else 0,
                trainer.world_size if trainer is not None else 1,
            )
            self._cache_loader("train", loader)
        return self._loaders["train"]
