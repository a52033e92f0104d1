"""Low-rank multi-head softmax attention (``lowrank_attention``), trained end to end.

Seed: Amsel, Yehudai, Bruna, "On the Benefits of Rank in Attention Layers" (2024). Inputs and
metrics: :mod:`zoo.attention.base`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any

import torch
from torch import Tensor, nn

from zoo.attention.base import EvaluatedModule, check_set_input, measured
from zoo.core import Interval, register_model
from zoo.core.config import Footprint

__all__ = ["LowRankAttention"]


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
class LowRankAttention(EvaluatedModule):
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
        self.check_hparams({"dim": dim, "heads": heads, "rank": rank}, {})
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

    @classmethod
    def check_hparams(cls, hp: Mapping[str, Any], data: Mapping[str, Any]) -> None:
        """``rank=None`` needs H | d; an explicit rank is at most d (a head's Q, K, V ∈ R^{d×r})."""
        dim, heads, rank = hp["dim"], hp["heads"], hp["rank"]
        if rank is None and dim % heads:
            raise ValueError(
                f"rank=None means rank = dim/heads, but heads={heads} does not divide dim={dim}: "
                "set heads to a divisor of dim, or set rank"
            )
        if rank is not None and rank > dim:
            raise ValueError(
                f"rank={rank} > dim={dim}: a head projects R^dim to R^rank, so its rank is at "
                f"most dim; set rank <= {dim}"
            )

    @classmethod
    def footprint(cls, hp: Mapping[str, Any], data: Mapping[str, Any]) -> Footprint:
        """Q, K, V, O (L, H, d, r); per sample and layer the queries' and keys' (H, T, r)
        projections, the (H, T_q, N_k) logits and softmax, and the (T, d) residual stream."""
        d, h, layers = hp["dim"], hp["heads"], hp["layers"]
        r = hp["rank"] if hp["rank"] is not None else d // h
        t = data.get("n_set", 2)
        keys = t if hp["self_attention"] else t - 1
        last_q = t if hp["self_attention"] else 1

        def layer(tq: int) -> int:  # float32 values kept by a layer with tq queries
            return h * (2 * tq * r + 2 * keys * r + 2 * tq * keys) + tq * d + t * d

        params = 4 * layers * h * d * r
        act = 4 * data.get("batch_size", 1) * ((layers - 1) * layer(t) + layer(last_q))
        return Footprint(params=params, modules=4, other=act + 12 * params)

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
        check_set_input(x, self.hparams.dim)
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
            "mean ‖f(x) − y‖² = MSE·d (predicting 0 scores 1), with a 95 % bootstrap interval "
            "over the n test sets; `test/loss_median` is the median per-set squared error."
            + measured(metrics, ("error", "loss_median"))
        )
