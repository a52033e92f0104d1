"""Shared pieces of the attention family: input check, activations, metric, base modules.

Inputs ``x: (B, N+1, d)``: the query ``x₀ = x[:, 0]`` and the keys ``x₁..x_N = x[:, 1:]``
(uniform on S^{d−1} in the registered data).

Every model reports, per split, the squared error summed over outputs,
``loss = mean_b ‖f(x_b) − y_b‖²`` (= MSE·k; for the nearest-neighbour target, MSE·d), and two
normalised versions: ``error = loss / mean_b ‖y_b‖²`` (predicting 0 scores 1; for unit-vector
labels this is exactly MSE·d) and ``risk = loss / mean_b ‖y_b − ȳ‖²`` (predicting the mean
scores 1). A row b is a sample, or a point of a sample for per-point (``self_attention``)
outputs.

Evaluation follows :mod:`zoo.core.evaluation`: the examples are the samples (sets), and each
contributes the per-sample columns of :func:`error_columns` (its rows' mean ‖f − y‖², ‖y‖² and
y), so the three ratios above, bootstrapped over samples, are exactly the full-split values.
The per-sample squared error is heavy-tailed (for the nearest-neighbour target it is ≈ 0 on
most sets and ≈ 2 on the near-ties a model gets wrong), so it is also summarised by the mean
and std of its log₁₀ and its median: ``loss_log10_mean``, ``loss_log10_std``, ``loss_median``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.attention.ridge import ridge_objective, ridge_solve
from zoo.core import Interval, ZooModule
from zoo.core.config import Footprint, Seed
from zoo.core.evaluation import Columns, Statistic, format_metric, log10_summary, mean, ratio, wmean

__all__ = [
    "RF_DATA",
    "Activation",
    "EvaluatedModule",
    "RandomFeatureModel",
    "apply_activation",
    "check_set_input",
    "error_columns",
    "error_statistics",
    "measured",
]

Activation = Literal["relu", "tanh", "gelu", "exp"]

# rf_attention and its rf_mlp baseline train on the same data, so their risks compare.
RF_DATA = {
    "n_set": 9,
    "dim": 8,
    "sampler": "sphere",
    "target": "key_exp",
    "target_params": {"beta": 1.0},
}


def apply_activation(name: str, s: Tensor) -> Tensor:
    """σ(s) elementwise for σ one of :data:`Activation`; any shape in, same shape out."""
    if name == "relu":
        return F.relu(s)
    if name == "tanh":
        return torch.tanh(s)
    if name == "gelu":
        return F.gelu(s)
    return torch.exp(s)


def check_set_input(x: Tensor, d: int) -> None:
    """Raise ``ValueError`` unless ``x: (B, N+1, d)`` with N >= 1 (a query and a key)."""
    if x.dim() != 3 or x.shape[1] < 2 or x.shape[2] != d:
        raise ValueError(f"expected x: (B, N+1, {d}) (query + >= 1 key), got {tuple(x.shape)}")


def error_columns(pred: Tensor, y: Tensor, out_dim: int) -> dict[str, Tensor]:
    """Per-sample columns of ``loss``, ``error`` and ``risk``, one row per sample.

    pred, y: (B, ...) holding R rows of width ``out_dim`` per sample (R = 1, or the points of
    a per-point output) → ``{"sse": (B,), "sq": (B,), "y_0": (B,), ..., "y_{k−1}": (B,)}``:
    the sample's row means of ‖f − y‖², of ‖y‖² and of each output coordinate of y (float64).
    """
    b = len(y)
    f = pred.detach().reshape(b, -1, out_dim).double()
    t = y.detach().reshape(b, -1, out_dim).double()
    y_mean = t.mean(1)  # (B, k)
    cols = {"sse": (f - t).pow(2).sum(-1).mean(1), "sq": t.pow(2).sum(-1).mean(1)}
    cols.update({f"y_{j}": y_mean[:, j] for j in range(out_dim)})
    return cols


def error_statistics(out_dim: int) -> dict[str, Statistic]:
    """``{metric: Statistic}`` of the :func:`error_columns` of width ``out_dim``.

    ``loss`` = mean sse, ``error`` = mean sse / mean sq, ``risk`` = mean sse / (mean sq −
    ‖mean y‖²) — every sample has the same number of rows, so these are the row-level values
    of the module docstring — and the log₁₀ summary and median of the per-sample sse
    (``loss_log10_mean``, ``loss_log10_std``, ``loss_median``).
    """
    names = [f"y_{j}" for j in range(out_dim)]

    def risk(w: Tensor, c: Mapping[str, Tensor]) -> Tensor:
        y_bar = w @ torch.stack([c[k] for k in names], 1).to(w.dtype)  # (R, k)
        return wmean(w, c["sse"]) / (wmean(w, c["sq"]) - y_bar.pow(2).sum(1))

    tails = {f"loss_{k}": f for k, f in log10_summary("sse").items()}
    return {"loss": mean("sse"), "error": ratio("sse", "sq"), "risk": risk, **tails}


def measured(metrics: Mapping[str, Any], keys: tuple[str, ...]) -> str:
    """``"Measured on the test split: `test/risk` = 0.07 [0.068, 0.072], n = 16384; ..."`` for
    the ``test/<key>`` present in the folded ``metrics`` (``""`` when none is)."""
    parts = [
        f"`test/{k}` = {format_metric(metrics, f'test/{k}')}"
        for k in keys
        if f"test/{k}" in metrics
    ]
    return f" Measured on the test split: {'; '.join(parts)}." if parts else ""


class EvaluatedModule(ZooModule):
    """Shared train/val/test steps: MSE·k loss, normalised error/risk metrics per split."""

    out_dim: int

    def _setup_metrics(self, out_dim: int) -> None:
        self.out_dim = out_dim
        names = ["sse", "sq", *(f"y_{j}" for j in range(out_dim))]
        self.columns = nn.ModuleDict({s: Columns(names) for s in ("val", "test")})

    def loss(self, pred: Tensor, y: Tensor) -> Tensor:
        """Mean over rows of ‖pred − y‖² (MSE times the output dimension); a row is a sample,
        or a point for per-point (``self_attention``) outputs."""
        diff = (pred - y.reshape(pred.shape)).pow(2)
        return diff.reshape(-1, self.out_dim).sum(1).mean()

    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        x, y = batch[0], batch[1]
        loss = self.loss(self(x), y)
        self.log_train("loss", loss, weight=len(x), prog_bar=True)
        return loss

    def eval_step(self, split: str, batch: tuple[Tensor, ...]) -> None:
        x, y = batch[0], batch[1]
        self.columns[split].update(**error_columns(self(x), y, self.out_dim))

    def eval_epoch_end(self, split: str) -> None:
        columns = self.columns[split].compute()
        self.columns[split].reset()
        self.log_estimates(split, columns, error_statistics(self.out_dim), prog_bar="error")


class RandomFeatureModel(EvaluatedModule):
    """Linear readout on frozen random features, f(x) = Φ(x) V, trained by SGD or ridge.

    Subclasses implement :meth:`features` ``x: (B, N+1, d) → Φ: (B, P)``; ``V: (P, k)`` is the
    only trained parameter. With ``solver="ridge"`` the recipe's fit sets V to the closed form
    minimiser of (1/n)‖ΦV − Y‖² + l2‖V‖² over the whole training split (see
    :mod:`zoo.attention.ridge`) and the training steps only log; with ``solver="sgd"`` the
    optimiser minimises the same objective (the ``l2`` term is added to the loss).
    """

    def __init__(
        self,
        *,
        out_dim: Annotated[int, Interval(ge=1)] = 1,
        solver: Literal["sgd", "ridge"] = "sgd",
        l2: Annotated[float, Interval(ge=0)] = 0.0,
        feature_seed: Seed = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._setup_metrics(out_dim)
        if solver == "ridge":
            self.automatic_optimization = False

    @classmethod
    def _footprint(
        cls, hp: Mapping[str, Any], data: Mapping[str, Any], frozen: float, p: float, act: float
    ) -> Footprint:
        """A random-feature model with ``frozen`` buffer elements, ``p`` features and ``act``
        float32 activations per sample: the readout V (P, k), one batch and, for the ridge
        solver, the whole training split's features Φ (float32, then float64) and the
        min(n, P)² float64 system; for SGD the gradients and two moments of V."""
        readout = p * hp["out_dim"]
        other = 4 * data.get("batch_size", 1) * act
        if hp["solver"] == "ridge":
            n = data.get("n_train", 0)
            other += 12 * n * p + 16 * min(n, p) ** 2
        else:
            other += 12 * readout
        return Footprint(params=frozen + readout, modules=4, other=other)

    @property
    def num_features(self) -> int:
        """P, the number of random features (= trained parameters per output)."""
        raise NotImplementedError

    def features(self, x: Tensor) -> Tensor:
        """Φ(x): (B, P)."""
        raise NotImplementedError

    def _generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.hparams.feature_seed)

    def forward(self, x: Tensor) -> Tensor:
        """f(x) = Φ(x) V: (B,) when out_dim = 1, else (B, out_dim)."""
        out = self.features(x) @ self.readout
        return out[:, 0] if self.out_dim == 1 else out

    def objective(self, x: Tensor, y: Tensor, lam: float | None = None) -> float:
        """Training objective (1/n)‖Φ(x)V − Y‖_F² + λ‖V‖_F² (λ defaults to ``l2``)."""
        lam = self.hparams.l2 if lam is None else lam
        with torch.no_grad():
            return ridge_objective(self.batched_features(x), y, self.readout, lam)

    @torch.no_grad()
    def batched_features(self, x: Tensor, chunk: int = 2048) -> Tensor:
        """Φ(x) computed in chunks of ``chunk`` samples. x: (n, N+1, d) → (n, P)."""
        return torch.cat([self.features(x[i : i + chunk]) for i in range(0, len(x), chunk)])

    @torch.no_grad()
    def fit_ridge(self, x: Tensor, y: Tensor, lam: float | None = None) -> float:
        """Set V to the closed-form ridge minimiser on ``(x, y)``; return the objective.

        x: (n, N+1, d), y: (n,) or (n, out_dim); ``lam`` defaults to the ``l2``
        hyper-parameter (it must be > 0 or the minimum-norm least-squares solution is used).
        """
        phi = self.batched_features(x)
        v = ridge_solve(phi, y.reshape(len(y), -1), self.hparams.l2 if lam is None else lam)
        self.readout.copy_(v.to(self.readout.dtype))
        return ridge_objective(phi, y, self.readout, self.hparams.l2 if lam is None else lam)

    def model_card_extra(self, metrics: dict[str, Any]) -> str:
        """Model-card section: target, d, N, number of random features, how V was fitted."""
        hp, data = self.hparams, dict(self.zoo_data_config or {})
        fit = (
            f"closed-form ridge, λ = {hp.l2:g}, on the whole training split"
            if hp.solver == "ridge"
            else f"{hp.optimizer} on (1/n)‖ΦV − Y‖² + {hp.l2:g}‖V‖²"
        )
        return (
            "## Setting\n\n"
            f"Target `{data.get('target')}` {data.get('target_params') or ''} on query + "
            f"N = {int(data.get('n_set', 1)) - 1} keys uniform on S^(d−1), d = {data.get('dim')}; "
            f"{self.num_features} frozen random features ({type(self).__name__}); V fitted by "
            f"{fit}. `test/risk` = MSE / Var(y) on the test split (predicting the mean scores "
            "1), `test/error` = MSE / E[y²] (predicting 0 scores 1); intervals are 95 % "
            "bootstrap intervals over the n test sets." + measured(metrics, ("risk", "error"))
        )

    def on_train_split(self, split: tuple[Tensor, ...]) -> None:
        """``solver="ridge"``: V is the closed-form ridge solution on the whole training split."""
        if self.hparams.solver == "ridge":
            self.fit_ridge(split[0], split[1])

    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        x, y = batch[0], batch[1]
        if self.hparams.solver == "ridge":  # V is already the closed form: only log
            with torch.no_grad():
                loss = self.loss(self(x), y)
            self.log_train("loss", loss, weight=len(x), prog_bar=True)
            return loss
        mse = self.loss(self(x), y)
        self.log_train("loss", mse, weight=len(x), prog_bar=True)
        if self.hparams.l2 > 0:
            return mse + self.hparams.l2 * self.readout.pow(2).sum()
        return mse
