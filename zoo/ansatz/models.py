"""Symmetric and antisymmetric ansätze on sets x: (B, N, D) (SPEC §1).

- ``deepsets``:         f(X) = ρ(Σ_i φ(x_i)), φ: R^D → R^L, ρ: R^L → R.
- ``relation_net``:     f(X) = ρ(Σ_{i,j} ψ(x_i, x_j)), ψ: R^{2D} → R^L.
- ``sym_single_index``: f(X) = g(⟨β/|β|, q(X)⟩), q the normalised power sums on the unit
  circle, g frozen, β trained; the overlap ⟨β, β*⟩/|β||β*| with the planted β* is logged.
- ``slater``:           f(X) = Σ_{l=1}^K det[φ^l_j(x_i)]_{i,j≤N}, evaluated in the log domain.
- ``jastrow``:          f(X) = exp(J(X)) · Σ_l det[φ^l_j(x_i)], J symmetric.

Loss (all models): the batch-normalised MSE  L = mean((f − y)²) / Var_batch(y), i.e. 1 − R²,
which is invariant to the target's scale (the pairwise energy grows like N², |Ψ_λ| varies
over orders of magnitude); the reported metric ``nmse`` = Σ(f − y)²/Σ(y − ȳ)² over the whole
split, so predicting the mean scores 1 and the exact function 0.
"""

from __future__ import annotations

import itertools
import math
from typing import Annotated, Any, Literal

import torch
from torch import Tensor, nn
from torchmetrics import MeanSquaredError, R2Score

from zoo.ansatz.targets import hermite_functions, link_function, normalized_power_sums
from zoo.core.config import Interval
from zoo.core.module import ZooModule
from zoo.core.registry import register_model

__all__ = [
    "DeepSets",
    "Jastrow",
    "RelationNet",
    "SetRegressor",
    "Slater",
    "SymSingleIndex",
    "mlp",
    "signed_logsumexp",
    "zero_nonfinite_grads",
]

Activation = Literal["relu", "gelu", "silu", "tanh"]
_ACTS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
}


def mlp(sizes: list[int], activation: str = "silu") -> nn.Sequential:
    """Linear layers of ``sizes`` with ``activation`` between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(_ACTS[activation]())
    return nn.Sequential(*layers)


def signed_logsumexp(sign: Tensor, logabs: Tensor, dim: int = -1) -> tuple[Tensor, Tensor]:
    """(sign, log|s|) of s = Σ_l sign_l · exp(logabs_l) along ``dim``, never leaving log space.

    Max-shifted: with m = max_l logabs_l, s = e^m Σ_l sign_l e^{logabs_l − m}, so every term is
    ≤ 1 in magnitude. Terms with logabs = −inf (zero determinants) contribute 0.
    """
    m = logabs.amax(dim=dim, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m)).detach()
    s = (sign * torch.exp(logabs - m)).sum(dim=dim)
    return torch.sign(s), m.squeeze(dim) + torch.log(s.abs())


def zero_nonfinite_grads(module: nn.Module) -> bool:
    """Zero all gradients of ``module`` if any is NaN/inf; return True if they were finite.

    A determinant that becomes exactly singular in floating point makes the slogdet backward
    evaluate 0 · ∞ (its true gradient, the adjugate, is finite); such a step is skipped.
    """
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if all(torch.isfinite(g).all() for g in grads):
        return True
    for g in grads:
        g.zero_()
    return False


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

    @staticmethod
    def _check(x: Tensor, n_set: int | None, dim: int) -> None:
        if x.dim() != 3 or x.shape[-1] != dim or (n_set is not None and x.shape[1] != n_set):
            want = f"(B, {n_set if n_set is not None else 'N'}, {dim})"
            raise ValueError(f"expected x of shape {want}, got {tuple(x.shape)}")

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


class _Standardized(SetRegressor):
    """A SetRegressor whose raw network output h is mapped to f = μ + σ h, with (μ, σ) the
    mean and std of the training labels, measured once at the start of the first fit and
    stored as persistent buffers (so checkpoints carry them). Keeps symmetry (μ, σ are
    constants) and lets the network work at unit scale whatever the target's scale."""

    def __init__(self, standardize: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.register_buffer("out_shift", torch.zeros(()))
        self.register_buffer("out_scale", torch.ones(()))
        self.register_buffer("out_fitted", torch.zeros((), dtype=torch.bool))

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
        out = self.out_shift + self.out_scale * h
        return out.squeeze(-1) if self.hparams.out_dim == 1 else out


@register_model(
    "deepsets",
    data="sets",
    data_defaults={"n_set": 8, "sampler": "sphere", "target": "pairwise_energy"},
    shared=("dim",),
    paper="Zweig & Bruna, Exponential Separations in Symmetric Neural Networks (NeurIPS 2022)",
)
class DeepSets(_Standardized):
    """DeepSets f(X) = ρ(Σ_i φ(x_i)): a symmetric network with a width-L sum bottleneck.

    φ: R^D → R^L and ρ: R^L → R^{out} are MLPs with ``depth`` hidden layers of ``hidden``
    units; x: (B, N, D) → (B,) (or (B, out_dim)). The output is μ + σ ρ(·) with (μ, σ) the
    training labels' mean and std (``standardize``, see :class:`_Standardized`).
    """

    def __init__(
        self,
        dim: Annotated[int, Interval(ge=1)] = 3,
        width: Annotated[int, Interval(ge=1)] = 16,
        hidden: Annotated[int, Interval(ge=1)] = 64,
        depth: Annotated[int, Interval(ge=1)] = 2,
        out_dim: Annotated[int, Interval(ge=1)] = 1,
        pool: Literal["sum", "mean"] = "sum",
        activation: Activation = "silu",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.phi = mlp([dim] + [hidden] * depth + [width], activation)
        self.rho = mlp([width] + [hidden] * depth + [out_dim], activation)

    def embed(self, x: Tensor) -> Tensor:
        """The pooled latent Σ_i φ(x_i) (or the mean): x: (B, N, D) → (B, L)."""
        self._check(x, None, self.hparams.dim)
        h = self.phi(x)
        return h.sum(1) if self.hparams.pool == "sum" else h.mean(1)

    def forward(self, x: Tensor) -> Tensor:
        """f(X): x: (B, N, D) → (B,) (or (B, out_dim))."""
        return self._out(self.rho(self.embed(x)))


@register_model(
    "relation_net",
    data="sets",
    data_defaults={"n_set": 8, "sampler": "sphere", "target": "pairwise_energy"},
    shared=("dim",),
    paper="Zweig & Bruna, Exponential Separations in Symmetric Neural Networks (NeurIPS 2022)",
)
class RelationNet(_Standardized):
    """Relation Network f(X) = ρ(Σ_{i,j} ψ(x_i, x_j)): symmetric, pairwise, width-L bottleneck.

    ψ: R^{2D} → R^L acts on the concatenation [x_i, x_j] of every ordered pair (i = j
    included); x: (B, N, D) → (B,). Cost O(B N² L). Output standardised like DeepSets.
    """

    def __init__(
        self,
        dim: Annotated[int, Interval(ge=1)] = 3,
        width: Annotated[int, Interval(ge=1)] = 16,
        hidden: Annotated[int, Interval(ge=1)] = 64,
        depth: Annotated[int, Interval(ge=1)] = 2,
        out_dim: Annotated[int, Interval(ge=1)] = 1,
        pool: Literal["sum", "mean"] = "sum",
        activation: Activation = "silu",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.psi = mlp([2 * dim] + [hidden] * depth + [width], activation)
        self.rho = mlp([width] + [hidden] * depth + [out_dim], activation)

    def embed(self, x: Tensor) -> Tensor:
        """Σ_{i,j} ψ(x_i, x_j) (or the mean over pairs): x: (B, N, D) → (B, L)."""
        self._check(x, None, self.hparams.dim)
        b, n, d = x.shape
        pairs = torch.cat(
            [x.unsqueeze(2).expand(b, n, n, d), x.unsqueeze(1).expand(b, n, n, d)], dim=-1
        )
        h = self.psi(pairs)  # (B, N, N, L)
        return h.sum((1, 2)) if self.hparams.pool == "sum" else h.mean((1, 2))

    def forward(self, x: Tensor) -> Tensor:
        """f(X): x: (B, N, D) → (B,) (or (B, out_dim))."""
        return self._out(self.rho(self.embed(x)))


_SSI_BETA = [0.5, -0.5, 0.0, 0.5, 0.0, 0.5]


@register_model(
    "sym_single_index",
    data="sets",
    data_defaults={
        "n_set": 8,
        "dim": 1,
        "sampler": "cue",
        "target": "sym_single_index",
        "target_params": {"beta": _SSI_BETA, "link": "he2"},
        "n_train": 2048,
        "resample": True,
    },
    defaults={"optimizer": "sgd", "lr": 0.05, "momentum": 0.0},
    paper="Zweig & Bruna, Symmetric Single Index Learning (ICLR 2024)",
)
class SymSingleIndex(SetRegressor):
    """Symmetric single-index model f(X) = g(⟨β/|β|, q(X)⟩) with frozen link g, β trained.

    q_k(X) = Re(Σ_j e^{ikθ_j})/√(min(k, N)/2), k = 1..K, the power sums normalised to be
    orthonormal under CUE; x: (B, N, 1) angles or (B, N, 2) (cos, sin) → (B,). With
    ``normalize=False`` the model is g(⟨β, q⟩) (β off the sphere). ``train/overlap`` and
    ``test/overlap`` = ⟨β, β*⟩/(|β||β*|) with the planted β* of the data's ``target_params``
    (for an even link such as the default He_2, β* and −β* define the same function, so
    overlap −1 is as good as +1).
    """

    def __init__(
        self,
        n_features: Annotated[int, Interval(ge=1)] = 6,
        link: Literal["he1", "he2", "he3", "he4", "tanh", "relu"] = "he2",
        normalize: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.beta = nn.Parameter(torch.randn(n_features) / math.sqrt(n_features))
        self._g = link_function(link)

    def direction(self) -> Tensor:
        """β/|β| (or β when ``normalize=False``): (K,)."""
        return self.beta / self.beta.norm() if self.hparams.normalize else self.beta

    def forward(self, x: Tensor) -> Tensor:
        """f(X) = g(⟨β, q(X)⟩): x: (B, N, 1|2) → (B,)."""
        q = normalized_power_sums(x, self.hparams.n_features)
        return self._g(q @ self.direction())

    def overlap(self, beta_star: list[float] | Tensor) -> Tensor:
        """Cosine ⟨β, β*⟩/(|β||β*|) (β* zero-padded/truncated to K entries)."""
        bs = torch.as_tensor(beta_star, dtype=self.beta.dtype, device=self.beta.device)
        k = self.hparams.n_features
        bs = torch.nn.functional.pad(bs[:k], (0, max(0, k - len(bs))))
        return (self.beta @ bs) / (self.beta.norm() * bs.norm())

    def _beta_star(self) -> list[float] | None:
        return (self.data_config.get("target_params") or {}).get("beta")

    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        loss = super().training_step(batch, batch_idx)
        bs = self._beta_star()
        if bs is not None:
            self.log("train/overlap", self.overlap(bs).detach(), sync_dist=True)
        return loss

    def model_card_extra(self, metrics: dict[str, Any]) -> str:
        ov = metrics.get("test/overlap")
        link = ((self.zoo_data_config or {}).get("target_params") or {}).get("link")
        return super().model_card_extra(metrics) + (
            f"\n\nOverlap with the planted direction ⟨β, β*⟩/|β||β*| = {ov:.4g} "
            f"(link `{link}`; ±1 are both exact for an even link)."
            if isinstance(ov, float)
            else ""
        )

    def eval_epoch_end(self, stage: str) -> None:
        super().eval_epoch_end(stage)
        bs = self._beta_star()
        if stage == "test" and bs is not None:
            self.log("test/overlap", self.overlap(bs).detach())


@register_model(
    "slater",
    data="sets",
    shared=("n_set", "dim"),
    data_defaults={
        "sampler": "line",
        "target": "calogero",
        "target_params": {"lam": 1.0},
    },
    defaults={"lr": 1e-2},
    paper="Zweig & Bruna, Towards Antisymmetric Neural Ansatz Separation (2022)",
)
class Slater(SetRegressor):
    """Sum of K Slater determinants f(X) = Σ_l det[φ^l_j(x_i)], evaluated in the log domain.

    (sign_l, log|det_l|) = slogdet(Φ^l) and the K terms are combined by a max-shifted signed
    log-sum-exp, so N ≥ 16 neither overflows nor underflows. Orbitals:

    - ``hermite`` (D = 1): φ^l_j(x) = Σ_{m<M} C^l_{jm} ψ_m(x), ψ_m the normalised Hermite
      functions (M = ``n_basis``); C^l_{jm} ~ N(0, 1/M) at initialisation.
    - ``mlp``: φ^l_j(x) = MLP(x)_{lj} · exp(−a_{lj}|x|²), a = softplus(·) > 0 an envelope
      (``hidden`` ≥ N, else the N orbitals are combinations of fewer features and det ≡ 0).

    Conditioning: for N ≳ 24 points the N×N orbital matrices are ill-conditioned enough that
    float32 (and for crowded points float64) LU loses digits of log|det|; no overflow occurs.

    x: (B, N, D) → f: (B,); :meth:`signed_log` gives (sign, log|f|).
    """

    def __init__(
        self,
        n_set: Annotated[int, Interval(ge=1)] = 4,
        dim: Annotated[int, Interval(ge=1)] = 1,
        n_dets: Annotated[int, Interval(ge=1)] = 1,
        orbitals: Literal["hermite", "mlp"] = "hermite",
        n_basis: Annotated[int, Interval(ge=1)] = 12,
        hidden: Annotated[int, Interval(ge=1)] = 64,
        depth: Annotated[int, Interval(ge=1)] = 2,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        k, n = n_dets, n_set
        if orbitals == "hermite":
            if dim != 1:
                raise ValueError(f"hermite orbitals are 1-D: dim must be 1, got {dim}")
            if n_basis < n_set:
                raise ValueError(f"n_basis={n_basis} < n_set={n_set}: the determinant is zero")
            self.coef = nn.Parameter(torch.randn(k, n, n_basis) / n_basis**0.5)
        else:
            if hidden < n_set:
                raise ValueError(
                    f"mlp orbitals: hidden={hidden} < n_set={n_set} makes the N orbitals linear "
                    "combinations of fewer features, so every determinant is 0"
                )
            self.orbital_net = mlp([dim] + [hidden] * depth + [k * n], "tanh")
            self.envelope = nn.Parameter(torch.full((k, n), math.log(math.e**0.5 - 1)))

    def scaled_orbitals(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(Φ̃, ℓ) with Φ[b, l, i, j] = φ^l_j(x_i) = Φ̃[b, l, i, j] · exp(ℓ[b, i]).

        Hermite orbitals: ψ_m(x) = P_m(x) e^{−x²/2}; the polynomial parts P_m(x_i) are
        evaluated in float64 and each row (particle) i is divided by r_i = max_m |P_m(x_i)|,
        so ℓ_i = log r_i − x_i²/2 and Φ̃ = O(1): no underflow of e^{−x²/2} or overflow of
        P_m for far-out particles, and row-equilibrated matrices for LU. MLP orbitals: ℓ = 0.
        x: (B, N, D) → Φ̃: (B, K, N, N), ℓ: (B, N).
        """
        hp = self.hparams
        self._check(x, hp.n_set, hp.dim)
        b, n = x.shape[:2]
        if hp.orbitals == "hermite":
            x64 = x[..., 0].double()
            poly = hermite_functions(x64, hp.n_basis, envelope=False)  # (B, N, M)
            r = poly.abs().amax(-1).clamp_min(1e-300)  # (B, N)
            basis = (poly / r.unsqueeze(-1)).to(self.coef.dtype)
            log_row = (torch.log(r) - 0.5 * x64**2).to(self.coef.dtype)
            return torch.einsum("bim,ljm->blij", basis, self.coef), log_row
        phi = self.orbital_net(x).reshape(b, n, hp.n_dets, n).permute(0, 2, 1, 3)
        a = nn.functional.softplus(self.envelope)[None, :, None, :]  # (1, K, 1, N)
        return phi * torch.exp(-a * (x**2).sum(-1)[:, None, :, None]), x.new_zeros(b, n)

    def orbital_matrix(self, x: Tensor) -> Tensor:
        """Φ[b, l, i, j] = φ^l_j(x_i) (may under/overflow for large N): x → (B, K, N, N)."""
        phi, log_row = self.scaled_orbitals(x)
        return phi * torch.exp(log_row)[:, None, :, None]

    def slater_log(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(sign, log|Σ_l det Φ^l|) = signed-LSE_l slogdet(Φ̃^l) + Σ_i ℓ_i: x → 2×(B,)."""
        phi, log_row = self.scaled_orbitals(x)
        sign, logabs = torch.linalg.slogdet(phi)  # (B, K) each
        sign, logabs = signed_logsumexp(sign, logabs, dim=-1)
        return sign, logabs + log_row.sum(-1)

    def signed_log(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(sign f, log|f|): x: (B, N, D) → 2×(B,)."""
        return self.slater_log(x)

    def forward(self, x: Tensor) -> Tensor:
        """f(X) = sign · exp(log|f|): x: (B, N, D) → (B,)."""
        sign, logabs = self.signed_log(x)
        return sign * torch.exp(logabs)

    def model_card_extra(self, metrics: dict[str, Any]) -> str:
        hp = self.hparams
        return (
            super().model_card_extra(metrics)
            + f"\n\nAnsatz: K = {hp.n_dets} determinant(s) of {hp.orbitals} orbitals"
            + (f" (M = {hp.n_basis} Hermite functions)." if hp.orbitals == "hermite" else ".")
        )


@register_model(
    "jastrow",
    data="sets",
    shared=("n_set", "dim"),
    data_defaults={
        "sampler": "line",
        "target": "calogero",
        "target_params": {"lam": 1.5},
    },
    defaults={"lr": 1e-2},
    paper="Zweig & Bruna, Towards Antisymmetric Neural Ansatz Separation (2022)",
)
class Jastrow(Slater):
    """Jastrow–Slater ansatz f(X) = exp(J(X)) · Σ_l det[φ^l_j(x_i)], J symmetric.

    J(X) = c Σ_{i<j} log|x_i − x_j| + Σ_{i<j} u(|x_i − x_j|, x_i + x_j), a learned "cusp"
    coefficient c (init 0) and a pair MLP u (last layer zero-initialised, so the ansatz starts
    as the Slater sum). Both terms are invariant under permutations, so f stays antisymmetric.
    With Hermite orbitals, c = λ − 1 and u = 0 represent Ψ_λ exactly with K = 1.
    log|f| = J + log|Σ det|, sign f = sign Σ det; x: (B, N, D) → (B,).
    """

    def __init__(
        self,
        jastrow_hidden: Annotated[int, Interval(ge=1)] = 32,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        dim = self.hparams.dim
        self.cusp = nn.Parameter(torch.zeros(()))
        self.pair_net = mlp([1 + dim, jastrow_hidden, jastrow_hidden, 1], "tanh")
        nn.init.zeros_(self.pair_net[-1].weight)
        nn.init.zeros_(self.pair_net[-1].bias)

    def jastrow(self, x: Tensor) -> Tensor:
        """J(X): x: (B, N, D) → (B,), invariant under permutations of the N points."""
        n = x.shape[1]
        iu = torch.triu_indices(n, n, offset=1, device=x.device)
        xi, xj = x[:, iu[0]], x[:, iu[1]]  # (B, P, D)
        r = (xi - xj).norm(dim=-1, keepdim=True)  # (B, P, 1)
        pair = self.pair_net(torch.cat([r, xi + xj], dim=-1)).squeeze(-1)  # (B, P)
        return self.cusp * torch.log(r.squeeze(-1)).sum(-1) + pair.sum(-1)

    def signed_log(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(sign f, log|f|) = (sign Σ det, J + log|Σ det|): x: (B, N, D) → 2×(B,)."""
        sign, logabs = self.slater_log(x)
        return sign, logabs + self.jastrow(x)

    def model_card_extra(self, metrics: dict[str, Any]) -> str:
        lam = ((self.zoo_data_config or {}).get("target_params") or {}).get("lam")
        exact = f" (exact Ψ_λ: c = λ − 1 = {lam - 1:.4g})" if isinstance(lam, float) else ""
        return (
            super().model_card_extra(metrics)
            + f" Learned cusp coefficient c = {self.cusp.item():.4g}{exact}."
        )
