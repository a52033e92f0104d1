"""Sums of Slater determinants in the log domain: the :class:`SlaterDeterminants` part, shared
with the Jastrow–Slater ansatz, and the ``slater`` model f(X) = Σ_l det[φ^l_j(x_i)]."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import torch
from torch import Tensor, nn

from zoo.ansatz.base import SetRegressor
from zoo.ansatz.blocks import check_sets, flatten_state_dict, mlp, mlp_size, signed_logsumexp
from zoo.ansatz.targets import hermite_functions
from zoo.core.config import Footprint, Interval
from zoo.core.registry import register_model

__all__ = ["L25_DATA", "L25_STD", "Slater", "SlaterDeterminants"]

#: std of the particle positions of the λ = 2.5 models (``slater_l25``, ``jastrow_l25``): under
#: the trap density's 1/√2 the squared target |Ψ_2.5|² is so heavy-tailed that its effective
#: sample size is 0.08 % of the sets (0.2 sets of a batch of 256: each step fits one set); at
#: 1.5 it is 2.8 % (see docs/ansatz.md)
L25_STD = 1.5
#: the data of the λ = 2.5 models (slater_l25, jastrow_l25, backflow): Calogero at λ = 2.5,
#: positions from N(0, L25_STD²)
L25_DATA = {
    "sampler": "line",
    "sampler_params": {"std": L25_STD},
    "target": "calogero",
    "target_params": {"lam": 2.5},
}


class SlaterDeterminants(nn.Module):
    """(sign, log|Σ_{l≤K} det Φ^l|) with Φ[b, l, i, j] = φ^l_j(x_i), never leaving log space.

    The determinant part of :class:`Slater` and of the Jastrow–Slater ansatz: K sets of N
    orbitals φ^l_j, ``hermite`` (D = 1, M = ``n_basis`` Hermite functions) or ``mlp`` (with a
    Gaussian envelope), see :class:`Slater`. x: (B, N, D) → (sign, log|Σ det|): 2×(B,).
    """

    def __init__(
        self,
        n_set: int,
        dim: int,
        n_dets: int = 1,
        orbitals: Literal["hermite", "mlp"] = "hermite",
        n_basis: int = 12,
        hidden: int = 64,
        depth: int = 2,
    ) -> None:
        super().__init__()
        self.check(n_set, dim, orbitals, n_basis, hidden)
        self.n_set, self.dim, self.n_dets = n_set, dim, n_dets
        self.orbitals, self.n_basis = orbitals, n_basis
        k, n = n_dets, n_set
        if orbitals == "hermite":
            self.coef = nn.Parameter(torch.randn(k, n, n_basis) / n_basis**0.5)
        else:
            self.orbital_net = mlp([dim] + [hidden] * depth + [k * n], "tanh")
            self.envelope = nn.Parameter(torch.full((k, n), math.log(math.e**0.5 - 1)))

    @staticmethod
    def check(n_set: int, dim: int, orbitals: str, n_basis: int, hidden: int) -> None:
        """Raise ``ValueError`` if these orbitals make every determinant zero or need D = 1."""
        if orbitals == "hermite":
            if dim != 1:
                raise ValueError(f"hermite orbitals are 1-D: dim must be 1, got {dim}")
            if n_basis < n_set:
                raise ValueError(f"n_basis={n_basis} < n_set={n_set}: the determinant is zero")
        elif hidden < n_set:
            raise ValueError(
                f"mlp orbitals: hidden={hidden} < n_set={n_set} makes the N orbitals linear "
                "combinations of fewer features, so every determinant is 0"
            )

    @staticmethod
    def check_hparams(hp: Mapping[str, Any]) -> None:
        """:meth:`check` on a model's hyper-parameters (those of ``slater`` or ``jastrow``)."""
        keys = ("n_set", "dim", "orbitals", "n_basis", "hidden")
        SlaterDeterminants.check(*(hp[k] for k in keys))

    @staticmethod
    def size(hp: Mapping[str, Any], batch: int) -> tuple[int, int, float]:
        """(parameters, modules, float32 activations of a batch of ``batch`` sets) of the part
        built from the model's hyper-parameters ``hp``: the (B, K, N, N) orbital matrices
        (kept ~4 times through slogdet) and the (B, N, M) Hermite basis (float64) or the
        orbital MLP's hidden values."""
        k, n, dim = hp["n_dets"], hp["n_set"], hp["dim"]
        act = 4 * batch * k * n * n
        if hp["orbitals"] == "hermite":
            return k * n * hp["n_basis"], 1, act + 6 * batch * n * hp["n_basis"]
        net_p, net_m = mlp_size([dim] + [hp["hidden"]] * hp["depth"] + [k * n])
        return net_p + k * n, 1 + net_m, act + 2 * batch * n * hp["hidden"] * hp["depth"]

    def scaled_orbitals(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(Φ̃, ℓ) with Φ[b, l, i, j] = φ^l_j(x_i) = Φ̃[b, l, i, j] · exp(ℓ[b, i]).

        Hermite orbitals: ψ_m(x) = P_m(x) e^{−x²/2}; the polynomial parts P_m(x_i) are
        evaluated in float64 and each row (particle) i is divided by r_i = max_m |P_m(x_i)|,
        so ℓ_i = log r_i − x_i²/2 and Φ̃ = O(1): no underflow of e^{−x²/2} or overflow of
        P_m for far-out particles, and row-equilibrated matrices for LU. MLP orbitals: ℓ = 0.
        x: (B, N, D) → Φ̃: (B, K, N, N), ℓ: (B, N).
        """
        check_sets(x, self.n_set, self.dim)
        b, n = x.shape[:2]
        if self.orbitals == "hermite":
            x64 = x[..., 0].double()
            poly = hermite_functions(x64, self.n_basis, envelope=False)  # (B, N, M)
            r = poly.abs().amax(-1).clamp_min(1e-300)  # (B, N)
            basis = (poly / r.unsqueeze(-1)).to(self.coef.dtype)
            log_row = (torch.log(r) - 0.5 * x64**2).to(self.coef.dtype)
            return torch.einsum("bim,ljm->blij", basis, self.coef), log_row
        phi = self.orbital_net(x).reshape(b, n, self.n_dets, n).permute(0, 2, 1, 3)
        a = nn.functional.softplus(self.envelope)[None, :, None, :]  # (1, K, 1, N)
        return phi * torch.exp(-a * (x**2).sum(-1)[:, None, :, None]), x.new_zeros(b, n)

    def orbital_matrix(self, x: Tensor) -> Tensor:
        """Φ[b, l, i, j] = φ^l_j(x_i) (may under/overflow for large N): x → (B, K, N, N)."""
        phi, log_row = self.scaled_orbitals(x)
        return phi * torch.exp(log_row)[:, None, :, None]

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(sign, log|Σ_l det Φ^l|) = signed-LSE_l slogdet(Φ̃^l) + Σ_i ℓ_i: x → 2×(B,)."""
        phi, log_row = self.scaled_orbitals(x)
        sign, logabs = torch.linalg.slogdet(phi)  # (B, K) each
        sign, logabs = signed_logsumexp(sign, logabs, dim=-1)
        return sign, logabs + log_row.sum(-1)

    def describe(self) -> str:
        """One sentence for the model card: K, the orbital kind and M."""
        return f"K = {self.n_dets} determinant(s) of {self.orbitals} orbitals" + (
            f" (M = {self.n_basis} Hermite functions)." if self.orbitals == "hermite" else "."
        )


@register_model(
    "slater_l25",
    data="sets",
    shared=("n_set", "dim"),
    data_defaults=L25_DATA,
    defaults={"lr": 1e-2},
    description="Sum of Slater determinants on the Calogero state at λ = 2.5, which no finite "
    "sum represents (the contrast to `jastrow_l25`).",
    paper="Zweig & Bruna, Towards Antisymmetric Neural Ansatz Separation (2022)",
)
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

    x: (B, N, D) → f: (B,); :meth:`signed_log` gives (sign, log|f|). The determinants are the
    :class:`SlaterDeterminants` part ``self.slater``, its tensors stored under flat keys.
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
        self.slater = SlaterDeterminants(n_set, dim, n_dets, orbitals, n_basis, hidden, depth)
        flatten_state_dict(self, "slater")

    @classmethod
    def check_hparams(cls, hp: Mapping[str, Any], data: Mapping[str, Any]) -> None:
        """The orbitals must allow a non-zero determinant (see :meth:`SlaterDeterminants.check`)."""
        SlaterDeterminants.check_hparams(hp)

    @classmethod
    def footprint(cls, hp: Mapping[str, Any], data: Mapping[str, Any]) -> Footprint:
        """The determinants' part and one batch (see :meth:`SlaterDeterminants.size`)."""
        return cls._footprint(*SlaterDeterminants.size(hp, data.get("batch_size", 1)))

    def signed_log(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(sign f, log|f|): x: (B, N, D) → 2×(B,)."""
        return self.slater(x)

    def forward(self, x: Tensor) -> Tensor:
        """f(X) = sign · exp(log|f|): x: (B, N, D) → (B,)."""
        sign, logabs = self.signed_log(x)
        return sign * torch.exp(logabs)

    def model_card_extra(self, metrics: dict[str, Any]) -> str:
        return super().model_card_extra(metrics) + "\n\nAnsatz: " + self.slater.describe()
