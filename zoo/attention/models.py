"""Random-feature attention, its random-feature-MLP baseline, and low-rank multi-head attention.

Inputs ``x: (B, N+1, d)``: the query ``x₀ = x[:, 0]`` and the keys ``x₁..x_N = x[:, 1:]``
(uniform on S^{d−1} in the registered data). Seeds: Fu, Guo, Bai, Mei, "What can a Single
Attention Layer Learn? A Study Through the Random Features Lens" (``rf_attention``,
``rf_mlp``); Amsel, Yehudai, Bruna, "On the Benefits of Rank in Attention Layers"
(``lowrank_attention``).

Every model reports, per split, the squared error summed over outputs,
``loss = mean_b ‖f(x_b) − y_b‖²`` (= MSE·k; for the nearest-neighbour target, MSE·d), and two
normalised versions: ``error = loss / mean_b ‖y_b‖²`` (predicting 0 scores 1; for unit-vector
labels this is exactly MSE·d) and ``risk = loss / mean_b ‖y_b − ȳ‖²`` (predicting the mean
scores 1).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import Metric

from zoo.attention.ridge import ridge_objective, ridge_solve
from zoo.core import Interval, ZooModule, register_model

__all__ = ["RFMLP", "LowRankAttention", "NormalisedError", "RFAttention", "RandomFeatureModel"]

Activation = Literal["relu", "tanh", "gelu", "exp"]


def _act(name: str, s: Tensor) -> Tensor:
    if name == "relu":
        return F.relu(s)
    if name == "tanh":
        return torch.tanh(s)
    if name == "gelu":
        return F.gelu(s)
    return torch.exp(s)


def _check_input(x: Tensor, d: int) -> None:
    if x.dim() != 3 or x.shape[1] < 2 or x.shape[2] != d:
        raise ValueError(f"expected x: (B, N+1, {d}) (query + >= 1 key), got {tuple(x.shape)}")


class NormalisedError(Metric):
    """Accumulates ``loss``, ``error`` and ``risk`` (see module docstring) over batches.

    Sums are reduced across DDP ranks, so the ratio is the exact full-split value.
    """

    full_state_update = False

    def __init__(self, out_dim: int) -> None:
        super().__init__()
        self.out_dim = out_dim  # rows of width out_dim: one per sample, or per point
        self.add_state("sse", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("sq", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        zeros = torch.zeros(out_dim, dtype=torch.float64)
        self.add_state("sum_y", default=zeros, dist_reduce_fx="sum")
        self.add_state("n", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: Tensor, y: Tensor) -> None:
        pred = pred.reshape(-1, self.out_dim).double()
        y = y.reshape(-1, self.out_dim).double()
        self.sse += (pred - y).pow(2).sum()
        self.sq += y.pow(2).sum()
        self.sum_y += y.sum(0)
        self.n += len(y)

    def compute(self) -> dict[str, Tensor]:
        mean_sq = self.sq / self.n
        var = mean_sq - (self.sum_y / self.n).pow(2).sum()
        loss = self.sse / self.n
        return {"loss": loss, "error": loss / mean_sq, "risk": loss / var}


class _Evaluated(ZooModule):
    """Shared train/val/test steps: MSE·k loss, normalised error/risk metrics per split."""

    out_dim: int

    def _setup_metrics(self, out_dim: int) -> None:
        self.out_dim = out_dim
        self.metrics = nn.ModuleDict({s: NormalisedError(out_dim) for s in ("val", "test")})

    def loss(self, pred: Tensor, y: Tensor) -> Tensor:
        """Mean over rows of ‖pred − y‖² (MSE times the output dimension); a row is a sample,
        or a point for per-point (``self_attention``) outputs."""
        diff = (pred - y.reshape(pred.shape)).pow(2)
        return diff.reshape(-1, self.out_dim).sum(1).mean()

    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        x, y = batch[0], batch[1]
        loss = self.loss(self(x), y)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(x), sync_dist=True)
        return loss

    def eval_step(self, split: str, batch: tuple[Tensor, ...]) -> None:
        x, y = batch[0], batch[1]
        self.metrics[split].update(self(x), y)

    def eval_epoch_end(self, split: str) -> None:
        values = self.metrics[split].compute()
        for k, v in values.items():
            self.log(f"{split}/{k}", v.float(), prog_bar=(k == "error"), sync_dist=False)
        self.metrics[split].reset()


class RandomFeatureModel(_Evaluated):
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
        feature_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._setup_metrics(out_dim)
        if solver == "ridge":
            self.automatic_optimization = False

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
            "1), `test/error` = MSE / E[y²] (predicting 0 scores 1)."
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
            self.log("train/loss", loss, prog_bar=True, batch_size=len(x), sync_dist=True)
            return loss
        mse = self.loss(self(x), y)
        self.log("train/loss", mse, prog_bar=True, batch_size=len(x), sync_dist=True)
        if self.hparams.l2 > 0:
            return mse + self.hparams.l2 * self.readout.pow(2).sum()
        return mse


# rf_attention and its rf_mlp baseline train on the same data, so their risks compare.
RF_DATA = {
    "n_set": 9,
    "dim": 8,
    "sampler": "sphere",
    "target": "key_exp",
    "target_params": {"beta": 1.0},
}


@register_model(
    "rf_attention",
    data="sets",
    defaults={"lr": 1e-2},
    data_defaults={k: v for k, v in RF_DATA.items() if k != "dim"},
    shared=("dim",),
    paper="Fu, Guo, Bai, Mei, What can a Single Attention Layer Learn? A Study Through the "
    "Random Features Lens (NeurIPS 2023)",
)
class RFAttention(RandomFeatureModel):
    """Random-feature attention: M heads with frozen random query-key matrices, trained values.

    f(x) = (1/√M) Σ_{m=1}^{M} (1/N) Σ_{i=1}^{N} σ(⟨x₀, W_m x_i⟩) (⟨v_m, x_i⟩ + c_m),

    W_m = w_mean·√d·I + G_m, G_m entries iid N(0, 1) (frozen, persistent buffer), so that
    ⟨x₀, G_m x_i⟩ ~ N(0, 1) for unit vectors and the mean part w_mean·√d·⟨x₀, x_i⟩ has the
    same order for random keys. Only V = (v_m, c_m) is trained: the features
    Φ_m(x) = (1/(N√M)) Σ_i σ(⟨x₀, W_m x_i⟩) [x_i; 1] make f = ⟨Φ(x), V⟩ linear in V.

    The 1/√M (a reparametrisation v_m → v_m/√M of the SPEC formula) makes ``l2`` and the
    learning rate independent of M. ``value_bias=False`` drops c_m (exactly the SPEC
    formula); then f(−x) = −f(x), so that model cannot fit any nonzero function of the
    inner products ⟨x₀, x_i⟩ (they are invariant under x → −x): the bias c_m, a constant
    coordinate appended to the values, is on by default.

    Args:
        dim: d.
        heads: M (P = M·d trained parameters per output).
        activation: σ.
        w_mean: non-zero mean of W_m in units of √d·I (0 = the zero-mean model).
        value_bias: append a constant 1 to the values (trained c_m), see above.
    """

    def __init__(
        self,
        dim: Annotated[int, Interval(ge=1)] = 8,
        heads: Annotated[int, Interval(ge=1)] = 128,
        activation: Activation = "relu",
        w_mean: float = 0.0,
        value_bias: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        g = self._generator()
        w = torch.randn(heads, dim, dim, generator=g)
        w = w + w_mean * math.sqrt(dim) * torch.eye(dim)
        self.register_buffer("W", w, persistent=True)
        self.readout = nn.Parameter(torch.zeros(self.num_features, self.out_dim))

    @property
    def num_features(self) -> int:
        return self.hparams.heads * (self.hparams.dim + int(self.hparams.value_bias))

    def features(self, x: Tensor) -> Tensor:
        """Φ(x)_{m,:} = (1/(N√M)) Σ_i σ(⟨x₀, W_m x_i⟩) [x_i; 1].

        x: (B, N+1, d) → (B, M·(d+1)) (M·d without value bias).
        """
        _check_input(x, self.hparams.dim)
        q, keys = x[:, 0], x[:, 1:]
        u = torch.einsum("bd,mde->bme", q, self.W)  # x₀ᵀ W_m: (B, M, d)
        s = _act(self.hparams.activation, torch.einsum("bme,bne->bmn", u, keys))  # (B, M, N)
        if self.hparams.value_bias:
            keys = torch.cat([keys, keys.new_ones(*keys.shape[:2], 1)], dim=-1)
        scale = keys.shape[1] * math.sqrt(self.hparams.heads)
        phi = torch.einsum("bmn,bnd->bmd", s, keys) / scale
        return phi.reshape(len(x), -1)


@register_model(
    "rf_mlp",
    data="sets",
    defaults={"lr": 1e-2},
    data_defaults={k: v for k, v in RF_DATA.items() if k not in ("n_set", "dim")},
    shared=("n_set", "dim"),
    paper="Fu, Guo, Bai, Mei (2023): the standard two-layer random-feature baseline",
)
class RFMLP(RandomFeatureModel):
    """Two-layer random-feature MLP on the flattened input, the baseline of ``rf_attention``.

    f(x) = (1/√P) Σ_{j=1}^{P} a_j σ(⟨w_j, vec(x)⟩), w_j ~ N(0, I/(N+1)) frozen (persistent
    buffer); vec(x) ∈ R^{(N+1)d} has norm √(N+1) so ⟨w_j, vec(x)⟩ ~ N(0, 1); only a is
    trained (1/√P: the same kernel normalisation as ``rf_attention``).

    Args:
        dim: d.
        n_set: N+1, the set size (query + keys) the input layer is built for.
        width: P, number of random features.
        match_heads: if > 0, set P = match_heads·(d+1): the same number of trained
            parameters as ``rf_attention`` (with value bias) with that many heads
            (overrides ``width``).
        activation: σ.
    """

    def __init__(
        self,
        dim: Annotated[int, Interval(ge=1)] = 8,
        n_set: Annotated[int, Interval(ge=2)] = 9,
        width: Annotated[int, Interval(ge=1)] = 1152,
        match_heads: Annotated[int, Interval(ge=0)] = 0,
        activation: Activation = "relu",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.width = match_heads * (dim + 1) if match_heads > 0 else width
        g = self._generator()
        w = torch.randn(n_set * dim, self.width, generator=g) / math.sqrt(n_set)
        self.register_buffer("W", w, persistent=True)
        self.readout = nn.Parameter(torch.zeros(self.width, self.out_dim))

    @property
    def num_features(self) -> int:
        return self.width

    def features(self, x: Tensor) -> Tensor:
        """Φ(x)_j = σ(⟨w_j, vec(x)⟩). x: (B, N+1, d) → (B, P)."""
        n, d = self.hparams.n_set, self.hparams.dim
        if x.dim() != 3 or x.shape[1:] != (n, d):
            raise ValueError(f"rf_mlp was built for x: (B, {n}, {d}), got {tuple(x.shape)}")
        return _act(self.hparams.activation, x.reshape(len(x), -1) @ self.W) / math.sqrt(self.width)


@register_model(
    "lowrank_attention",
    data="sets",
    defaults={"lr": 3e-3, "scheduler": "cosine"},
    shared=("dim",),
    data_defaults={
        "n_set": 17,
        "sampler": "sphere",
        "target": "nearest_neighbour",
        "resample": True,
    },
    paper="Amsel, Yehudai, Bruna, On the Benefits of Rank in Attention Layers (2024)",
)
class LowRankAttention(_Evaluated):
    """Multi-head softmax attention of the query over the keys, H heads of rank r.

    One layer, head h with Q_h, K_h, V_h ∈ R^{d×r}, O_h ∈ R^{r×d}, temperature τ:

        A(h)_j = Σ_h Σ_{i=1}^{N} softmax_i(τ ⟨Q_hᵀ h_j, K_hᵀ h_i⟩) O_hᵀ V_hᵀ h_i

    (the query token is never attended to). With L layers the tokens go through the residual
    stream h^{(l)} = h^{(l−1)} + A_l(h^{(l−1)}), h^{(0)} = x, and the output is the last layer's
    attention output at the query, f(x) = A_L(h^{(L−1)})_0 ∈ R^d. With H = 1, r = d,
    Q = K = V = O = I and τ → ∞ it is exactly the nearest key argmax_i ⟨x₀, x_i⟩.

    ``self_attention=True`` is the rank paper's self-attention variant: every token attends
    to all tokens and the output is A_L(h^{(L−1)}) at every token, flattened to (B, T·d)
    (target ``self_farthest``); with Q = −I, K = V = O = I and τ → ∞ it is exactly every
    point's farthest point (its own logit −τ is the smallest, so no mask is needed).

    Args:
        dim: d.
        heads: H.
        rank: r per head; ``None`` means r = d/H (H must divide d).
        layers: L.
        temperature: τ, a fixed multiplier of the attention logits.
        self_attention: every token is a query and a key (output (B, T·d)).
    """

    def __init__(
        self,
        dim: Annotated[int, Interval(ge=1)] = 64,
        heads: Annotated[int, Interval(ge=1)] = 1,
        rank: Annotated[int, Interval(ge=1)] | None = None,
        layers: Annotated[int, Interval(ge=1)] = 1,
        temperature: Annotated[float, Interval(gt=0)] = 256.0,
        self_attention: bool = False,
        **kwargs: Any,
    ) -> None:
        if rank is None and dim % heads:
            raise ValueError(
                f"rank=None means rank = dim/heads, but heads={heads} does not divide dim={dim}"
            )
        super().__init__(**kwargs)
        r = rank if rank is not None else dim // heads
        self.rank = r
        self._setup_metrics(dim)
        shape = (layers, heads, dim, r)
        # logits τ⟨Q_hᵀx₀, K_hᵀx_i⟩ have std ≈ τ√r·s² at init: s = (τ√r)^{-1/2} makes it 1
        s = (temperature * math.sqrt(r)) ** -0.5
        self.q = nn.Parameter(torch.randn(shape) * s)
        self.k = nn.Parameter(torch.randn(shape) * s)
        self.v = nn.Parameter(torch.randn(shape) / math.sqrt(dim))
        self.o = nn.Parameter(torch.randn(layers, heads, r, dim) / math.sqrt(r * heads))

    def attention(self, h: Tensor, layer: int, queries: slice | None = None) -> Tensor:
        """A_l(h) at the tokens ``queries`` (all by default). h: (B, T, d) → (B, T', d)."""
        h_q = h if queries is None else h[:, queries]
        keys = h if self.hparams.self_attention else h[:, 1:]
        q = torch.einsum("btd,hdr->bhtr", h_q, self.q[layer])
        k = torch.einsum("bnd,hdr->bhnr", keys, self.k[layer])
        v = torch.einsum("bnd,hdr->bhnr", keys, self.v[layer])
        a = torch.softmax(self.hparams.temperature * q @ k.transpose(-1, -2), dim=-1)
        return torch.einsum("bhtr,hre->bte", a @ v, self.o[layer])

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, N+1, d) → f(x): (B, d); with ``self_attention``, x: (B, T, d) → (B, T·d)."""
        _check_input(x, self.hparams.dim)
        h = x
        for layer in range(self.hparams.layers - 1):
            h = h + self.attention(h, layer)
        last = self.hparams.layers - 1
        if self.hparams.self_attention:
            return self.attention(h, last).flatten(1)
        return self.attention(h, last, slice(0, 1))[:, 0]

    @torch.no_grad()
    def set_identity(self) -> None:
        """The exact construction: Q = K = V = O = identity blocks (head h gets coordinates
        h·r..(h+1)·r). With H = 1, r = d, one layer and τ → ∞ it computes the nearest key;
        with ``self_attention`` Q = −I instead, which computes every farthest point."""
        d, r = self.hparams.dim, self.rank
        for p in (self.q, self.k, self.v, self.o):
            p.zero_()
        for h in range(self.hparams.heads):
            idx = torch.arange(h * r, min((h + 1) * r, d))
            cols = torch.arange(len(idx))
            for p in (self.q, self.k, self.v):
                p[:, h, idx, cols] = 1.0
            self.o[:, h, cols, idx] = 1.0
        if self.hparams.self_attention:
            self.q.neg_()

    def model_card_extra(self, metrics: dict[str, Any]) -> str:
        hp, data = self.hparams, dict(self.zoo_data_config or {})
        pick = "argmin" if data.get("target") == "farthest_neighbour" else "argmax"
        return (
            "## Setting\n\n"
            f"Target `{data.get('target')}`: the key {pick}_i ⟨x_i, x₀⟩ ∈ R^d, query + "
            f"N = {int(data.get('n_set', 1)) - 1} keys uniform on S^(d−1), fresh samples every "
            f"batch (resample = {data.get('resample')}). d = {hp.dim}, H = {hp.heads} heads of "
            f"rank r = {self.rank}, L = {hp.layers} layer(s), temperature τ = {hp.temperature}; "
            f"{sum(p.numel() for p in self.parameters())} trained parameters. `test/error` = "
            "mean ‖f(x) − y‖² = MSE·d (predicting 0 scores 1)."
        )
