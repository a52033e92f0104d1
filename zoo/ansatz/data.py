"""Sets X ∈ R^{B×N×D}: input samplers, a registry of targets with exact values, and the
``"sets"`` datamodule shared by the ansatz and attention families.

A sample is a set of ``N`` points (``n_set``) in dimension ``D`` (``dim``), drawn by a
registered *sampler*; its label is the exact value of a registered *target*
``fn(x: (B, N, D), **target_params) -> (B,) or (B, k)``. Other families add targets with
:func:`register_target` (the attention family: ``x[:, 0]`` is the query, ``x[:, 1:]`` the
keys, symmetry ``"invariant_in_keys"``, vector-valued outputs allowed).

Samplers (``sampler=``, parameters in ``sampler_params``):

- ``gaussian``: x_i ~ N(0, std² I_D) i.i.d.
- ``sphere``:   x_i uniform on S^{D−1} (normalised Gaussians).
- ``line``:     D = 1, x_i ~ N(0, std²) with std = 1/√2 by default: the one-particle density
                |h_0(x)|² ∝ e^{−x²} of the harmonic trap, the natural scale for fermions.
- ``cue``:      the N eigenvalues e^{iθ_j} of a Haar-random unitary U(N) (circular unitary
                ensemble, joint density ∝ Π_{j<k}|e^{iθ_j} − e^{iθ_k}|²); D = 1 returns the
                angles θ ∈ (−π, π], D = 2 the points (cos θ, sin θ).

Targets registered here (``target=``, parameters in ``target_params``):

- ``pairwise_energy`` (symmetric): E(X) = Σ_{i<j} u(⟨x_i, x_j⟩), u(t) = exp(β t) (``u="exp"``,
  default β = 2) or u(t) = t^p (``u="power"``, ``degree=p``).
- ``calogero`` (antisymmetric, D = 1): Ψ_λ(x) = Π_{i<j} (x_i − x_j)|x_i − x_j|^{λ−1}
  · exp(−Σ_i x_i²/2). λ = 1 is the free-fermion ground state of the harmonic trap, a single
  Slater determinant of Hermite functions; non-integer λ is no finite Slater sum.
- ``sym_single_index`` (symmetric, CUE inputs): y = g(Σ_k β*_k q_k(X)) with the normalised
  power sums q_k = Re(p_k)/√(min(k, N)/2), p_k = Σ_j e^{ikθ_j}; under CUE
  E[q_j q_k] = δ_{jk} (Diaconis–Shahshahani), so ⟨β*, q⟩ has unit variance for |β*| = 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
import torch
from torch import Tensor

from zoo.core.config import Interval
from zoo.core.data import SyntheticDataModule, TensorBatches
from zoo.core.registry import register_datamodule

__all__ = [
    "SYMMETRIES",
    "SetDataModule",
    "TargetSpec",
    "calogero_log",
    "evaluate_target",
    "get_target",
    "hermite_functions",
    "link_function",
    "list_samplers",
    "list_targets",
    "normalized_power_sums",
    "register_sampler",
    "register_target",
    "sample_sets",
]

SYMMETRIES = ("symmetric", "antisymmetric", "invariant_in_keys", "equivariant")
Symmetry = Literal["symmetric", "antisymmetric", "invariant_in_keys", "equivariant"]
SamplerFn = Callable[..., Tensor]
TargetFn = Callable[..., Tensor]


# ----------------------------------------------------------------------------- samplers
_SAMPLERS: dict[str, SamplerFn] = {}


def register_sampler(name: str) -> Callable[[SamplerFn], SamplerFn]:
    """Register ``fn(n, n_set, dim, generator, device, **params) -> (n, N, D)`` as ``name``."""

    def deco(fn: SamplerFn) -> SamplerFn:
        _SAMPLERS[name] = fn
        return fn

    return deco


def list_samplers() -> list[str]:
    """Sorted registered sampler names."""
    return sorted(_SAMPLERS)


def _unknown(kind: str, name: str, valid: list[str]) -> ValueError:
    return ValueError(f"unknown {kind} {name!r}; valid {kind}s: {sorted(valid)}")


def sample_sets(
    sampler: str,
    n: int,
    n_set: int,
    dim: int,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
    **params: Any,
) -> Tensor:
    """Draw ``n`` sets with ``sampler``; returns x: (n, N, D) float32 on ``device``."""
    if sampler not in _SAMPLERS:
        raise _unknown("sampler", sampler, list(_SAMPLERS))
    x = _SAMPLERS[sampler](n, n_set, dim, generator, torch.device(device), **params)
    return x.to(torch.float32)


@register_sampler("gaussian")
def _gaussian(
    n: int, n_set: int, dim: int, generator: torch.Generator, device: torch.device, std: float = 1.0
) -> Tensor:
    """x_i ~ N(0, std² I_D)."""
    return std * torch.randn(n, n_set, dim, generator=generator, device=device)


@register_sampler("sphere")
def _sphere(
    n: int, n_set: int, dim: int, generator: torch.Generator, device: torch.device
) -> Tensor:
    """x_i uniform on the unit sphere S^{D−1}."""
    g = torch.randn(n, n_set, dim, generator=generator, device=device)
    return g / g.norm(dim=-1, keepdim=True).clamp_min(1e-30)


@register_sampler("line")
def _line(
    n: int,
    n_set: int,
    dim: int,
    generator: torch.Generator,
    device: torch.device,
    std: float = 1 / math.sqrt(2),
) -> Tensor:
    """D = 1 particles, x_i ~ N(0, std²) (std = 1/√2: the harmonic-trap ground-state density)."""
    if dim != 1:
        raise ValueError(f"sampler 'line' draws 1-D particles: dim must be 1, got {dim}")
    return std * torch.randn(n, n_set, 1, generator=generator, device=device)


@register_sampler("cue")
def _cue(n: int, n_set: int, dim: int, generator: torch.Generator, device: torch.device) -> Tensor:
    """Eigen-angles of Haar unitaries: QR of a complex Ginibre matrix with the phases of
    diag(R) divided out (Mezzadri 2007), then the eigenvalues; D = 1 angles, D = 2 (cos, sin).
    """
    if dim not in (1, 2):
        raise ValueError(f"sampler 'cue' returns angles (dim=1) or (cos, sin) (dim=2), got {dim}")
    z = torch.randn(n, n_set, n_set, 2, generator=generator, device=device, dtype=torch.float64)
    q, r = torch.linalg.qr(torch.complex(z[..., 0], z[..., 1]))
    d = torch.diagonal(r, dim1=-2, dim2=-1)
    q = q * (d / d.abs()).unsqueeze(-2)
    theta = torch.angle(torch.linalg.eigvals(q))  # (n, N)
    if dim == 1:
        return theta.unsqueeze(-1)
    return torch.stack([theta.cos(), theta.sin()], dim=-1)


# ----------------------------------------------------------------------------- targets
@dataclass(frozen=True)
class TargetSpec:
    """A registered target: its exact value function and its symmetry.

    Attributes:
        name: registry name (``target=`` in the data config).
        fn: ``fn(x: (B, N, D), **params) -> (B,) or (B, k)``, exact (computed in x's dtype).
        symmetry: ``"symmetric"`` (invariant under permutations of the N points),
            ``"antisymmetric"`` (sign flip under transpositions), ``"invariant_in_keys"``
            (x[:, 0] is a query; invariant under permutations of x[:, 1:]) or
            ``"equivariant"`` (one output per point, (B, N·k), permuted with the points).
        description: one line for docs and model cards.
    """

    name: str
    fn: TargetFn
    symmetry: Symmetry
    description: str = ""


_TARGETS: dict[str, TargetSpec] = {}


def register_target(
    name: str, *, symmetry: Symmetry, description: str = ""
) -> Callable[[TargetFn], TargetFn]:
    """Decorator registering an exact target ``fn(x: (B, N, D), **params)`` as ``name``."""
    if symmetry not in SYMMETRIES:
        raise ValueError(f"symmetry={symmetry!r} is not one of {SYMMETRIES}")

    def deco(fn: TargetFn) -> TargetFn:
        if name in _TARGETS and _TARGETS[name].fn is not fn:
            raise ValueError(f"target {name!r} is already registered to {_TARGETS[name].fn}")
        doc = description or (fn.__doc__ or "").strip().splitlines()[0]
        _TARGETS[name] = TargetSpec(name=name, fn=fn, symmetry=symmetry, description=doc)
        return fn

    return deco


def list_targets(symmetry: str | None = None) -> list[str]:
    """Sorted registered target names, optionally only those of one symmetry kind."""
    return sorted(n for n, s in _TARGETS.items() if symmetry is None or s.symmetry == symmetry)


def get_target(name: str) -> TargetSpec:
    """The :class:`TargetSpec` of ``name``; unknown names list the valid ones."""
    if name not in _TARGETS:
        raise _unknown("target", name, list(_TARGETS))
    return _TARGETS[name]


def evaluate_target(name: str, x: Tensor, **params: Any) -> Tensor:
    """Exact value of target ``name`` at x: (B, N, D) → (B,) or (B, k).

    Raises:
        ValueError: on an unknown target, bad ``params`` or an output of the wrong shape.
    """
    spec = get_target(name)
    if x.dim() != 3:
        raise ValueError(f"x must be (B, N, D), got shape {tuple(x.shape)}")
    try:
        y = spec.fn(x, **params)
    except TypeError as e:
        raise ValueError(f"bad target_params for target {name!r}: {e}") from None
    if y.dim() not in (1, 2) or y.shape[0] != x.shape[0]:
        raise ValueError(
            f"target {name!r} returned shape {tuple(y.shape)}, expected (B,) or (B, k)"
        )
    return y


def _pair_mask(n: int, device: torch.device) -> Tensor:
    """Boolean (N, N) mask of the pairs i < j."""
    return torch.ones(n, n, dtype=torch.bool, device=device).triu(1)


@register_target("pairwise_energy", symmetry="symmetric")
def pairwise_energy(
    x: Tensor, u: Literal["exp", "power"] = "exp", beta: float = 2.0, degree: int = 4
) -> Tensor:
    """E(X) = Σ_{i<j} u(⟨x_i, x_j⟩), u(t) = exp(β t) or t^degree; x: (B, N, D) → (B,)."""
    gram = x @ x.transpose(-1, -2)  # (B, N, N)
    if u == "exp":
        v = torch.exp(beta * gram)
    elif u == "power":
        v = gram**degree
    else:
        raise ValueError(f"pairwise_energy: u={u!r} is not 'exp' or 'power'")
    return (v * _pair_mask(x.shape[1], x.device)).sum(dim=(-1, -2))


def calogero_log(x: Tensor, lam: float = 1.0) -> tuple[Tensor, Tensor]:
    """(sign, log|Ψ_λ|) of the Calogero–Sutherland-type ground state, x: (B, N, 1) → 2×(B,).

    log|Ψ_λ| = λ Σ_{i<j} log|x_i − x_j| − Σ_i x_i²/2 and sign = Π_{i<j} sign(x_i − x_j):
    finite for any N (no overflow), −inf where two particles coincide.
    """
    if x.shape[-1] != 1:
        raise ValueError(f"calogero targets are 1-D (D = 1), got D = {x.shape[-1]}")
    if lam <= 0:
        raise ValueError(f"calogero: lam must be > 0, got {lam}")
    p = x[..., 0]  # (B, N)
    diff = p.unsqueeze(-1) - p.unsqueeze(-2)  # (B, N, N): x_i − x_j
    mask = _pair_mask(p.shape[-1], p.device)
    d = diff[:, mask]  # (B, N(N−1)/2)
    logabs = lam * torch.log(d.abs()).sum(-1) - 0.5 * (p**2).sum(-1)
    sign = torch.sign(d).prod(-1)
    return sign, logabs


@register_target("calogero", symmetry="antisymmetric")
def calogero(x: Tensor, lam: float = 1.0) -> Tensor:
    """Ψ_λ(x) = Π_{i<j}(x_i − x_j)|x_i − x_j|^{λ−1} e^{−Σ x_i²/2}; x: (B, N, 1) → (B,)."""
    sign, logabs = calogero_log(x, lam)
    return sign * torch.exp(logabs)


def hermite_functions(x: Tensor, m: int, envelope: bool = True) -> Tensor:
    """The first ``m`` normalised Hermite functions ψ_k(x) = (2^k k! √π)^{−1/2} H_k(x) e^{−x²/2}.

    Stable three-term recurrence ψ_{k+1} = √(2/(k+1)) x ψ_k − √(k/(k+1)) ψ_{k−1},
    ψ_0 = π^{−1/4} e^{−x²/2}. ``envelope=False`` drops the factor e^{−x²/2} (the polynomial
    parts, for log-domain use). x: (...) → (..., m).
    """
    out = [math.pi**-0.25 * (torch.exp(-0.5 * x**2) if envelope else torch.ones_like(x))]
    if m > 1:
        out.append(math.sqrt(2.0) * x * out[0])
    for k in range(1, m - 1):
        out.append(math.sqrt(2.0 / (k + 1)) * x * out[k] - math.sqrt(k / (k + 1)) * out[k - 1])
    return torch.stack(out[:m], dim=-1)


def normalized_power_sums(x: Tensor, n_features: int) -> Tensor:
    """q_k(X) = Re(Σ_j e^{ikθ_j}) / √(min(k, N)/2), k = 1..K; orthonormal under CUE.

    x: (B, N, 1) angles θ or (B, N, 2) points (cos θ, sin θ) → (B, K).
    """
    if x.shape[-1] == 1:
        theta = x[..., 0]
    elif x.shape[-1] == 2:
        theta = torch.atan2(x[..., 1], x[..., 0])
    else:
        raise ValueError(f"power sums need angles (D=1) or (cos, sin) (D=2), got D={x.shape[-1]}")
    k = torch.arange(1, n_features + 1, device=x.device, dtype=x.dtype)
    re = torch.cos(theta.unsqueeze(-1) * k).sum(dim=-2)  # (B, K)
    return re / torch.sqrt(torch.clamp(k, max=x.shape[1]) / 2)


LINKS = ("he1", "he2", "he3", "he4", "tanh", "relu")


def link_function(name: str) -> Callable[[Tensor], Tensor]:
    """The link g: probabilists' Hermite He_k (information exponent k), tanh or relu."""
    links: dict[str, Callable[[Tensor], Tensor]] = {
        "he1": lambda z: z,
        "he2": lambda z: (z**2 - 1) / math.sqrt(2),
        "he3": lambda z: (z**3 - 3 * z) / math.sqrt(6),
        "he4": lambda z: (z**4 - 6 * z**2 + 3) / math.sqrt(24),
        "tanh": torch.tanh,
        "relu": torch.relu,
    }
    if name not in links:
        raise ValueError(f"unknown link {name!r}; valid links: {list(links)}")
    return links[name]


@register_target("sym_single_index", symmetry="symmetric")
def sym_single_index(x: Tensor, beta: list[float] | None = None, link: str = "he3") -> Tensor:
    """y = g(⟨β*, q(X)⟩), q the normalised power sums (β* is normalised); x: (B, N, 1|2) → (B,)."""
    if not beta:
        raise ValueError("sym_single_index needs target_params.beta, the planted direction β*")
    b = torch.as_tensor(beta, dtype=x.dtype, device=x.device)
    if not torch.isfinite(b).all() or b.norm() == 0:
        raise ValueError(f"sym_single_index: beta must be finite and non-zero, got {beta}")
    q = normalized_power_sums(x, len(beta))
    return link_function(link)(q @ (b / b.norm()))


# ----------------------------------------------------------------------------- datamodule
class _ResampledBatches:
    """Train batches of fresh samples each epoch (epoch 0 serves the cached split).

    Epoch e ≥ 1 draws ``n`` new samples with a generator seeded by ``(seed, "train", e)``,
    so runs stay deterministic while no training set is ever reused.
    """

    def __init__(self, dm: SetDataModule, n: int, batch_size: int, rank: int, world: int) -> None:
        self.dm, self.n, self.batch_size, self.rank, self.world = dm, n, batch_size, rank, world
        self.epoch = 0

    def __len__(self) -> int:
        per_rank = -(-self.n // self.world)
        return -(-per_rank // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        data = self.dm.split("train") if self.epoch == 0 else self.dm.fresh_train(self.epoch)
        self.epoch += 1
        yield from TensorBatches(
            data, self.batch_size, shuffle=False, rank=self.rank, world_size=self.world
        )


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
        if sampler not in _SAMPLERS:
            raise _unknown("sampler", sampler, list(_SAMPLERS))
        self.target_spec = get_target(target)
        self.sampler_params = dict(sampler_params or {})
        self.target_params = dict(target_params or {})

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
        if "train_fresh" not in self._loaders:
            trainer = getattr(self, "trainer", None)
            self._loaders["train_fresh"] = _ResampledBatches(
                self,
                self.hparams.n_train,
                self.hparams.batch_size,
                trainer.global_rank if trainer is not None else 0,
                trainer.world_size if trainer is not None else 1,
            )
        return self._loaders["train_fresh"]
