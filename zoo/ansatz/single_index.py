"""Symmetric single-index model f(X) = g(⟨β/|β|, q(X)⟩) on the unit circle (sets of angles)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import torch
from torch import Tensor, nn

from zoo.ansatz.base import SetRegressor
from zoo.ansatz.targets import link_function, normalized_power_sums
from zoo.core.config import Footprint, Interval
from zoo.core.evaluation import format_metric, mean
from zoo.core.registry import register_model

__all__ = ["SymSingleIndex"]

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
    overlap −1 is as good as +1); it does not depend on the test sets, so its interval is the
    point [overlap, overlap] with n = 1.
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

    @classmethod
    def footprint(cls, hp: Mapping[str, Any], data: Mapping[str, Any]) -> Footprint:
        """β, and one batch: the (B, N, K) cosines of the power sums (twice)."""
        k = hp["n_features"]
        act = 2 * data.get("batch_size", 1) * data.get("n_set", 1) * k
        return cls._footprint(k, 0, act)

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
            self.log_train("overlap", self.overlap(bs))
        return loss

    def model_card_extra(self, metrics: dict[str, Any]) -> str:
        link = ((self.zoo_data_config or {}).get("target_params") or {}).get("link")
        if "test/overlap" not in metrics:
            return super().model_card_extra(metrics)
        return super().model_card_extra(metrics) + (
            "\n\nOverlap with the planted direction ⟨β, β*⟩/|β||β*| = "
            f"{format_metric(metrics, 'test/overlap')} (link `{link}`; ±1 are both exact for an "
            "even link). It is a property of the weights and of β* (fixed by `target_params`, "
            "not drawn from the data seed), so it has no sampling uncertainty over test sets: "
            "it is reported with n = 1 and the point interval [value, value]."
        )

    def eval_epoch_end(self, stage: str) -> None:
        """The set metrics of :class:`SetRegressor`, and on test ``test/overlap`` as a
        one-row column (n = 1, interval [value, value]: no sampling uncertainty)."""
        super().eval_epoch_end(stage)
        bs = self._beta_star()
        if stage == "test" and bs is not None:
            ov = self.overlap(bs).detach().double().reshape(1)
            self.log_estimates(stage, {"overlap": ov}, {"overlap": mean("overlap")})
