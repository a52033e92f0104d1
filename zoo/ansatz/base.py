"""Base LightningModules of the ansatz family: regression on sets x: (B, N, D).

Loss (all models): the batch-normalised MSE  L = mean((f − y)²) / Var_batch(y), i.e. 1 − R²,
which is invariant to the target's scale (the pairwise energy grows like N², |Ψ_λ| varies
over orders of magnitude); the reported metric ``nmse`` = Σ(f − y)²/Σ(y − ȳ)² over the whole
split, so predicting the mean scores 1 and the exact function 0.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics import MeanSquaredError, R2Score

from zoo.ansatz.blocks import zero_nonfinite_grads
from zoo.core.config import Footprint
from zoo.core.module import ZooModule

__all__ = ["SetRegressor", "StandardizedSetRegressor"]


class SetRegressor(ZooModule):
    """Base of the family: regression on (x: (B, N, D), y: (B,) or (B, k)) with the normalised
    MSE loss of the module docstring; logs ``train/loss``, ``{val,test}/{nmse,mse}``."""

    monitor = "val/nmse"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metrics = nn.ModuleDict(
            {
                f"{s}_{m}": (R2Score() if m == "r2" else MeanSquaredError())
                for s in ("val", "test")
                for m in ("r2", "mse")
            }
        )

    @classmethod
    def _footprint(cls, params: float, modules: float, activations: float) -> Footprint:
        """The footprint of a model with ``params`` parameters and ``modules`` modules of its
        own that keeps ``activations`` float32 values of one batch for the backward pass; adds
        the base's metrics, and the gradients and two optimiser moments of every parameter."""
        return Footprint(params=params, modules=modules + 6, other=4 * activations + 12 * params)

    def loss(self, batch: tuple[Tensor, ...]) -> Tensor:
        """L = mean((f − y)²) / Var_batch(y)."""
        x, y = batch[0], batch[1]
        f = self(x).reshape(y.shape)
        return ((f - y) ** 2).mean() / y.var(unbiased=False).clamp_min(1e-12)

    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        loss = self.loss(batch)
        self.log("train/loss", loss, prog_bar=True, sync_dist=True)
        return loss

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Skip (zero) a step whose gradients are not finite; logs ``train/skipped``."""
        self.log("train/skipped", float(not zero_nonfinite_grads(self)), reduce_fx="sum")

    def eval_step(self, stage: str, batch: tuple[Tensor, ...]) -> None:
        x, y = batch[0], batch[1]
        f = self(x).reshape(y.shape)
        self.metrics[f"{stage}_r2"].update(f.flatten(), y.flatten())
        self.metrics[f"{stage}_mse"].update(f.flatten(), y.flatten())

    def eval_epoch_end(self, stage: str) -> None:
        r2, mse = self.metrics[f"{stage}_r2"], self.metrics[f"{stage}_mse"]
        self.log(f"{stage}/nmse", 1.0 - r2.compute(), prog_bar=stage == "val")
        self.log(f"{stage}/mse", mse.compute())
        r2.reset()
        mse.reset()

    def model_card_extra(self, metrics: dict[str, Any]) -> str:
        """Target, N, D and the meaning of the metrics, for the model card."""
        data = dict(self.zoo_data_config or {})
        nmse = metrics.get("test/nmse")
        lines = [
            "## Task",
            "",
            f"Target `{data.get('target')}` with parameters `{data.get('target_params') or {}}` "
            f"on sets of N = {data.get('n_set')} points in D = {data.get('dim')} "
            f"(sampler `{data.get('sampler')}`).",
            "",
            "`nmse` = Σ(f − y)² / Σ(y − ȳ)² on the test split (1 − R²: predicting the mean "
            "scores 1, the exact target 0)"
            + (f"; this checkpoint: {nmse:.4g}." if isinstance(nmse, float) else "."),
        ]
        return "\n".join(lines)


class StandardizedSetRegressor(SetRegressor):
    """A SetRegressor whose raw network output h is mapped to f = μ + σ h, with (μ, σ) the
    mean and std of the training labels, measured once at the start of the first fit and
    stored as persistent buffers (so checkpoints carry them). Keeps symmetry (μ, σ are
    constants) and lets the network work at unit scale whatever the target's scale."""

    def __init__(self, standardize: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.register_buffer("out_shift", torch.zeros(()))
        self.register_buffer("out_scale", torch.ones(()))
        self.register_buffer("out_fitted", torch.zeros((), dtype=torch.bool))

    @classmethod
    def _footprint(cls, params: float, modules: float, activations: float) -> Footprint:
        """As :meth:`SetRegressor._footprint`, plus the three buffers (μ, σ, fitted)."""
        return super()._footprint(params + 3, modules, activations)

    def fit_standardization(self, y: Tensor) -> None:
        """Set (μ, σ) from training labels y: (n,) or (n, k), once (no-op when fitted)."""
        if not self.hparams.standardize or bool(self.out_fitted):
            return
        self.out_shift.fill_(y.mean().item())
        self.out_scale.fill_(max(y.std().item(), 1e-12) if y.numel() > 1 else 1.0)
        self.out_fitted.fill_(True)

    def on_train_split(self, split: tuple[Tensor, ...]) -> None:
        self.fit_standardization(split[1])

    def _out(self, h: Tensor) -> Tensor:
        """f = μ + σ h: h: (B, out_dim) → (B,) when out_dim = 1, else (B, out_dim)."""
        out = self.out_shift + self.out_scale * h
        return out.squeeze(-1) if self.hparams.out_dim == 1 else out
