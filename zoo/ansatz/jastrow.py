"""The symmetric :class:`JastrowFactor` J(X) and the ``jastrow`` model, a Slater part composed
with it: f(X) = exp(J(X)) · Σ_l det[φ^l_j(x_i)]."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

import torch
from torch import Tensor, nn

from zoo.ansatz.base import SetRegressor
from zoo.ansatz.blocks import flatten_state_dict, mlp, mlp_size
from zoo.ansatz.slater import L25_DATA, SlaterDeterminants
from zoo.core.config import Footprint, Interval
from zoo.core.registry import register_model

__all__ = ["Jastrow", "JastrowFactor"]


class JastrowFactor(nn.Module):
    """Symmetric pair factor J(X) = c Σ_{i<j} log|x_i − x_j| + Σ_{i<j} u(|x_i − x_j|, x_i + x_j).

    A learned "cusp" coefficient c (``cusp``, init 0) and a pair MLP u: R^{1+D} → R
    (``pair_net``, last layer zero-initialised, so J ≡ 0 at initialisation). Both sums run over
    unordered pairs, so J is invariant under permutations of the points: multiplying any
    (anti)symmetric ansatz by exp(J) keeps its symmetry. x: (B, N, D) → J: (B,).
    """

    def __init__(self, dim: int, hidden: int = 32) -> None:
        super().__init__()
        self.cusp = nn.Parameter(torch.zeros(()))
        self.pair_net = mlp([1 + dim, hidden, hidden, 1], "tanh")
        nn.init.zeros_(self.pair_net[-1].weight)
        nn.init.zeros_(self.pair_net[-1].bias)

    def forward(self, x: Tensor) -> Tensor:
        """J(X): x: (B, N, D) → (B,), invariant under permutations of the N points."""
        n = x.shape[1]
        iu = torch.triu_indices(n, n, offset=1, device=x.device)
        xi, xj = x[:, iu[0]], x[:, iu[1]]  # (B, P, D)
        r = (xi - xj).norm(dim=-1, keepdim=True)  # (B, P, 1)
        pair = self.pair_net(torch.cat([r, xi + xj], dim=-1)).squeeze(-1)  # (B, P)
        return self.cusp * torch.log(r.squeeze(-1)).sum(-1) + pair.sum(-1)


@register_model(
    "jastrow_l25",
    data="sets",
    shared=("n_set", "dim"),
    data_defaults=L25_DATA,
    defaults={"lr": 1e-2},
    description="Jastrow–Slater ansatz on the Calogero state at λ = 2.5 (one determinant and "
    "exp(J) are exact there; no finite Slater sum is).",
    paper="Zweig & Bruna, Towards Antisymmetric Neural Ansatz Separation (2022)",
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
class Jastrow(SetRegressor):
    """Jastrow–Slater ansatz f(X) = exp(J(X)) · Σ_l det[φ^l_j(x_i)], J symmetric.

    J(X) = c Σ_{i<j} log|x_i − x_j| + Σ_{i<j} u(|x_i − x_j|, x_i + x_j), a learned "cusp"
    coefficient c (init 0) and a pair MLP u (last layer zero-initialised, so the ansatz starts
    as the Slater sum). Both terms are invariant under permutations, so f stays antisymmetric.
    With Hermite orbitals, c = λ − 1 and u = 0 represent Ψ_λ exactly with K = 1.
    log|f| = J + log|Σ det|, sign f = sign Σ det; x: (B, N, D) → (B,).

    Composed of the :class:`~zoo.ansatz.slater.SlaterDeterminants` part ``self.slater`` (the
    hyper-parameters of ``slater``) and the :class:`JastrowFactor` ``self.jastrow`` (width
    ``jastrow_hidden``); their tensors are stored under flat keys (``coef``, ``cusp``,
    ``pair_net.*``).
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
        jastrow_hidden: Annotated[int, Interval(ge=1)] = 32,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.slater = SlaterDeterminants(n_set, dim, n_dets, orbitals, n_basis, hidden, depth)
        self.jastrow = JastrowFactor(dim, jastrow_hidden)
        flatten_state_dict(self, "slater", "jastrow")

    @classmethod
    def check_hparams(cls, hp: Mapping[str, Any], data: Mapping[str, Any]) -> None:
        """The orbitals must allow a non-zero determinant (see :meth:`SlaterDeterminants.check`)."""
        SlaterDeterminants.check_hparams(hp)

    @classmethod
    def footprint(cls, hp: Mapping[str, Any], data: Mapping[str, Any]) -> Footprint:
        """The determinants' part, the Jastrow factor (cusp and pair MLP) and one batch: the
        pair MLP keeps ~4 values per hidden unit for each of the N(N−1)/2 pairs."""
        b, n, jh = data.get("batch_size", 1), hp["n_set"], hp["jastrow_hidden"]
        det_p, det_m, det_act = SlaterDeterminants.size(hp, b)
        pair_p, pair_m = mlp_size([1 + hp["dim"], jh, jh, 1])
        act = det_act + b * n * (n - 1) // 2 * (2 + hp["dim"] + 4 * jh)
        return cls._footprint(det_p + 1 + pair_p, det_m + 1 + pair_m, act)

    def signed_log(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(sign f, log|f|) = (sign Σ det, J + log|Σ det|): x: (B, N, D) → 2×(B,)."""
        sign, logabs = self.slater(x)
        return sign, logabs + self.jastrow(x)

    def forward(self, x: Tensor) -> Tensor:
        """f(X) = sign · exp(log|f|): x: (B, N, D) → (B,)."""
        sign, logabs = self.signed_log(x)
        return sign * torch.exp(logabs)

    def model_card_extra(self, metrics: dict[str, Any]) -> str:
        lam = ((self.zoo_data_config or {}).get("target_params") or {}).get("lam")
        exact = f" (exact Ψ_λ: c = λ − 1 = {lam - 1:.4g})" if isinstance(lam, float) else ""
        return (
            super().model_card_extra(metrics)
            + "\n\nAnsatz: "
            + self.slater.describe()
            + f" Learned cusp coefficient c = {self.jastrow.cusp.item():.4g}{exact}."
        )
