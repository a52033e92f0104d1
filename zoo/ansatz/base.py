"""Base LightningModules of the ansatz family: regression on sets x: (B, N, D).

Loss (all models): the batch-normalised MSE  L = mean((f − y)²) / Var_batch(y), i.e. 1 − R²,
which is invariant to the target's scale (the pairwise energy grows like N², |Ψ_λ| varies
over orders of magnitude); the reported metric ``nmse`` = Σ(f − y)²/Σ(y − ȳ)² over the whole
split, so predicting the mean scores 1 and the exact function 0.

Evaluation (:mod:`zoo.core.evaluation`): one row per evaluated set, the columns ``se`` (the
squared error (f − y)², averaged over the outputs), ``y`` and ``y2`` (the label and its
square, averaged over the outputs); the metrics are statistics of those columns
(:data:`STATISTICS`): ``nmse`` and ``mse`` (ratios of means, as before) and, since the squared
error per set is heavy-tailed (a few sets out of 10⁵ can carry half of Σ(f − y)² for the
determinant ansätze), the mean and std of log₁₀(f − y)² over sets and its median
(``sq_err_log10_mean``, ``sq_err_log10_std``, ``sq_err_median``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from zoo.ansatz.blocks import zero_nonfinite_grads
from zoo.core.config import Footprint
from zoo.core.evaluation import Columns, Statistic, format_metric, log10_summary, mean, wmean
from zoo.core.module import ZooModule

__all__ = ["COLUMNS", "STATISTICS", "SetRegressor", "StandardizedSetRegressor", "nmse"]

#: per-set columns of an evaluation: squared error, label and squared label (output means)
COLUMNS = ("se", "y", "y2")


def nmse(w: Tensor, c: Mapping[str, Tensor]) -> Tensor:
    """Σ(f − y)²/Σ(y − ȳ)² under example weights ``w: (R, n)`` of the columns ``se``, ``y``,
    ``y2`` (each ``(n,)``) → ``(R,)``: mean(se) / (mean(y²) − mean(y)²), the variance taken
    about the full split's mean ``m`` (mean((y − m)²) − (mean(y) − m)², no cancellation)."""
    m = c["y"].mean()
    var = wmean(w, c["y2"] - 2 * m * c["y"] + m**2) - (wmean(w, c["y"]) - m) ** 2
    return wmean(w, c["se"]) / var


#: the metrics of every model of the family, as statistics of :data:`COLUMNS`
STATISTICS: dict[str, Statistic] = {
    "nmse": nmse,
    "mse": mean("se"),
    **{f"sq_err_{k}": f for k, f in log10_summary("se").items()},
}

#: what each metric of :data:`STATISTICS` means, for the model card
_MEANING = {
    "nmse": "Σ(f − y)²/Σ(y − ȳ)² (1 − R²: the mean predictor scores 1, the exact target 0)",
    "mse": "mean (f − y)² over sets",
    "sq_err_log10_mean": "mean over sets of log₁₀ (f − y)²",
    "sq_err_log10_std": "std over sets of log₁₀ (f − y)²",
    "sq_err_median": "median over sets of (f − y)²",
}


class SetRegressor(ZooModule):
    """Base of the family: regression on (x: (B, N, D), y: (B,) or (B, k)) with the normalised
    MSE loss of the module docstring; logs ``train/loss`` and ``{val,test}/<metric>`` for the
    :data:`STATISTICS` (on test with a 95 % interval and n, see :mod:`zoo.core.evaluation`)."""

    monitor = "val/nmse"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.columns = nn.ModuleDict({s: Columns(COLUMNS) for s in ("val", "test")})

    @classmethod
    def _footprint(cls, params: float, modules: float, activations: float) -> Footprint:
        """The footprint of a model with ``params`` parameters and ``modules`` modules of its
        own that keeps ``activations`` float32 values of one batch for the backward pass; adds
        the module itself and the base's two :class:`Columns` (and their dict), and the
        gradients and two optimiser moments of every parameter."""
        return Footprint(params=params, modules=modules + 4, other=4 * activations + 12 * params)

    def loss(self, batch: tuple[Tensor, ...]) -> Tensor:
        """L = mean((f − y)²) / Var_batch(y)."""
        x, y = batch[0], batch[1]
        f = self(x).reshape(y.shape)
        return ((f - y) ** 2).mean() / y.var(unbiased=False).clamp_min(1e-12)

    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        loss = self.loss(batch)
        self.log_train("loss", loss, prog_bar=True)
        return loss

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Skip (zero) a step whose gradients are not finite; ``train/skipped`` counts them
        (per epoch)."""
        params = (p for group in optimizer.param_groups for p in group["params"])
        self.log_train("skipped", (~zero_nonfinite_grads(params)).float(), reduce="sum")

    @staticmethod
    def set_columns(f: Tensor, y: Tensor) -> dict[str, Tensor]:
        """The :data:`COLUMNS` of one batch: f, y: (B,) or (B, k) → ``{name: (B,)}`` float64.

        ``se`` is floored at the rounding error of f's dtype, (ε/2 · |y|)², so a set that the
        model reproduces to the last bit counts as that resolution in log₁₀ (not as −∞); the
        floor changes ``mse`` by at most (ε/2)² mean(y²), float error.
        """
        f64, y64 = f.detach().double().reshape(len(y), -1), y.double().reshape(len(y), -1)
        floor = (torch.finfo(f.dtype).eps / 2 * y64) ** 2
        se = torch.maximum((f64 - y64) ** 2, floor)
        return {"se": se.mean(1), "y": y64.mean(1), "y2": (y64**2).mean(1)}

    def eval_step(self, stage: str, batch: tuple[Tensor, ...]) -> None:
        x, y = batch[0], batch[1]
        self.columns[stage].update(**self.set_columns(self(x).reshape(y.shape), y))

    def eval_epoch_end(self, stage: str) -> None:
        columns = self.columns[stage]
        if columns.n:
            self.log_estimates(stage, columns.compute(), STATISTICS, prog_bar="nmse")
        columns.reset()

    def model_card_extra(self, metrics: dict[str, Any]) -> str:
        """Target, N, D and the test metrics (value [95 % interval], n) with their meaning."""
        data = dict(self.zoo_data_config or {})
        lines = [
            "## Task",
            "",
            f"Target `{data.get('target')}` with parameters `{data.get('target_params') or {}}` "
            f"on sets of N = {data.get('n_set')} points in D = {data.get('dim')} "
            f"(sampler `{data.get('sampler')}`).",
        ]
        rows = [
            f"| `test/{k}` | {format_metric(metrics, f'test/{k}')} | {meaning} |"
            for k, meaning in _MEANING.items()
            if f"test/{k}" in metrics
        ]
        if rows:
            lines += [
                "",
                "Test metrics of this checkpoint (value [95 % bootstrap interval over test sets], "
                "n = test sets); (f − y)² is in units of the target squared. `nmse` and `mse` "
                "are means of a per-set error that can be heavy-tailed (a few sets may carry "
                "most of Σ(f − y)²); the log₁₀ summaries and the median are the robust ones:",
                "",
                "| metric | value | meaning |",
                "|---|---|---|",
                *rows,
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
