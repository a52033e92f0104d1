"""Transformer encoder with multi-head attention of arbitrary rank per head (``rank_transformer``).

Amsel, Yehudai, Bruna, "On the Benefits of Rank in Attention Layers" (2024): every experiment
trains a standard transformer encoder on the self-attention farthest-point task and varies
the rank r of its heads, the number H of heads at a parameter budget H·r·d, and the depth.
Inputs and metrics: :mod:`zoo.attention.base`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.attention.base import EvaluatedModule, check_set_input, measured
from zoo.core import Interval, register_model
from zoo.core.config import Footprint

__all__ = ["L2Norm", "RankAttention", "RankTransformer", "RankTransformerBlock", "identity_gap"]

Norm = Literal["l2", "l2_fixed", "layer", "none"]


def identity_gap(m: Tensor) -> tuple[float, float]:
    """How far a square matrix is from a multiple of the identity.

    m: (d, d) → (c, δ) with c = tr(m)/d, the closest multiple c·I in Frobenius norm, and
    δ = ‖m − c·I‖_F / ‖m‖_F ∈ [0, 1] (0: exactly c·I; ≈ 1 − 1/d for a random matrix).
    """
    d = m.shape[0]
    c = torch.diagonal(m).sum() / d
    gap = torch.linalg.matrix_norm(m - c * torch.eye(d, dtype=m.dtype, device=m.device))
    return float(c), float(gap / torch.linalg.matrix_norm(m))


class L2Norm(nn.Module):
    """s · x / ‖x‖ over the last axis, with one learned scale s (init 1; the normalisation of
    the rank paper's code) or s = 1 fixed. It keeps the direction, so a unit-vector output
    stays exact (LayerNorm would subtract the coordinates' mean). x: (..., d) → (..., d)."""

    def __init__(self, learn_scale: bool = True) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(())) if learn_scale else None

    def forward(self, x: Tensor) -> Tensor:
        x = F.normalize(x, dim=-1)
        return x if self.scale is None else self.scale * x


def _norm(kind: Norm, dim: int) -> nn.Module:
    if kind in ("l2", "l2_fixed"):
        return L2Norm(learn_scale=kind == "l2")
    if kind == "layer":
        return nn.LayerNorm(dim)
    return nn.Identity()


class RankAttention(nn.Module):
    """Multi-head self-attention with H heads of rank r each (H·r need not equal d).

    Written out because ``nn.MultiheadAttention`` ties the head dimension to d/H. With
    learned W_Q, W_K, W_V ∈ R^{H·r×d}, W_O ∈ R^{d×H·r} and biases, head h sees
    q_h = W_Q^h x + b_Q^h ∈ R^r (likewise k_h, v_h) and

        A(X)_t = W_O [softmax_u(⟨q_h(x_t), k_h(x_u)⟩/√r) v_h(x_u)]_{h=1..H} + b_O.

    Q, K, V are initialised as ``nn.MultiheadAttention``'s in-projection (Xavier over its
    (3d, d) matrix) whatever H and r; W_O ~ U(±√d/(H·r)): ``nn.Linear``'s init at H·r = d,
    and beyond it the paper code's average of H·r/d such standard attention blocks. Biases
    start at 0.
    """

    def __init__(self, dim: int, heads: int, rank: int, bias: bool = True) -> None:
        super().__init__()
        self.heads, self.rank = heads, rank
        width = heads * rank
        self.q = nn.Linear(dim, width, bias=bias)
        self.k = nn.Linear(dim, width, bias=bias)
        self.v = nn.Linear(dim, width, bias=bias)
        self.o = nn.Linear(width, dim, bias=bias)
        with torch.no_grad():
            a = math.sqrt(6.0 / (4 * dim))
            for lin in (self.q, self.k, self.v):
                lin.weight.uniform_(-a, a)
            self.o.weight.uniform_(-math.sqrt(dim) / width, math.sqrt(dim) / width)
            for lin in (self.q, self.k, self.v, self.o):
                if lin.bias is not None:
                    lin.bias.zero_()

    def forward(self, x: Tensor, key_mask: Tensor | None = None) -> Tensor:
        """x: (B, T, d) → (B, T, d); ``key_mask: (T,)`` bool, False = never attended to."""
        b, t, _ = x.shape

        def split(p: Tensor) -> Tensor:  # (B, T, H·r) → (B, H, T, r)
            return p.view(b, t, self.heads, self.rank).transpose(1, 2)

        mask = None if key_mask is None else key_mask.expand(t, t)
        a = F.scaled_dot_product_attention(  # default scale 1/√r
            split(self.q(x)), split(self.k(x)), split(self.v(x)), attn_mask=mask
        )
        return self.o(a.transpose(1, 2).reshape(b, t, -1))

    def bilinear(self, head: int = 0) -> Tensor:
        """The logit matrix of head ``head``, W_Q^hᵀ W_K^h / √r: (d, d) (biases left out):
        the logit of token t on token u is x_tᵀ M x_u plus terms in the biases."""
        sl = slice(head * self.rank, (head + 1) * self.rank)
        return self.q.weight[sl].T @ self.k.weight[sl] / math.sqrt(self.rank)


class RankTransformerBlock(nn.Module):
    """One encoder block: attention and feed-forward sub-layers with residuals.

    Post-norm (``nn.TransformerEncoderLayer``'s default, the paper's): h ← N₁(h + A(h)),
    h ← N₂(h + F(h)); pre-norm: h ← h + A(N₁(h)), h ← h + F(N₂(h)). F(h) = W₂ relu(W₁h + b₁)
    + b₂ with width ``ff`` (``ff = 0``: no feed-forward sub-layer). x: (B, T, d) → (B, T, d).
    """

    def __init__(
        self, dim: int, heads: int, rank: int, ff: int, norm: Norm, norm_first: bool, bias: bool
    ) -> None:
        super().__init__()
        self.attn = RankAttention(dim, heads, rank, bias)
        self.ff = (
            nn.Sequential(nn.Linear(dim, ff, bias), nn.ReLU(), nn.Linear(ff, dim, bias))
            if ff > 0
            else None
        )
        self.norm1 = _norm(norm, dim)
        self.norm2 = _norm(norm, dim) if ff > 0 else nn.Identity()
        self.norm_first = norm_first

    def forward(self, h: Tensor, key_mask: Tensor | None = None) -> Tensor:
        if self.norm_first:
            h = h + self.attn(self.norm1(h), key_mask)
            return h if self.ff is None else h + self.ff(self.norm2(h))
        h = self.norm1(h + self.attn(h, key_mask))
        return h if self.ff is None else self.norm2(h + self.ff(h))


PAPER = "Amsel, Yehudai, Bruna, On the Benefits of Rank in Attention Layers (2024)"
OPTIMIZER = {"optimizer": "adamw", "lr": 5e-3, "scheduler": "cosine"}
DATA = {"n_set": 16, "sampler": "sphere", "target": "self_farthest", "resample": True}


@register_model(
    "rank_transformer_r8",
    data="sets",
    defaults={**OPTIMIZER, "heads": 8, "rank": 8},
    shared=("dim",),
    data_defaults=DATA,
    description="The low-rank control of rank_transformer: H = 8 heads of rank 8 (same d² "
    "budget as one full-rank head), which cannot compute the farthest point.",
    paper=PAPER,
)
@register_model(
    "rank_transformer",
    data="sets",
    defaults=OPTIMIZER,
    shared=("dim",),
    data_defaults=DATA,
    paper=PAPER,
)
class RankTransformer(EvaluatedModule):
    """Transformer encoder whose attention has H heads of rank r (H·r need not be d).

    ``layers`` :class:`RankTransformerBlock` s applied to the tokens x: (B, T, d) (no
    embedding, no positional encoding: the output permutes with the points). ``readout``
    ``"points"``: every token's output, flattened to (B, T·d) (target ``self_farthest``:
    every point's farthest point); ``"query"``: token 0's output (B, d), token 0 never being
    attended to (targets ``nearest_neighbour``, ``farthest_neighbour``). Per attention
    sub-layer the Q/K/V/O weights hold 4·H·r·d parameters; the paper's budgets d², d^2.5, d³
    are H·r = d, √d·d, d².

    The paper's construction: one head of rank d with W_Q^ᵀW_K ∝ −I and a large W_O (a
    point's own logit is the smallest), no feed-forward, computes the farthest point
    (``tests/attention/test_rank_transformer.py``); :meth:`construction_gap` measures how
    close a trained head is to it.

    Args:
        dim: d.
        heads: H.
        rank: r per head (any r <= d).
        layers: number of blocks.
        ff: feed-forward width (0: none).
        norm: ``l2`` (s·x/‖x‖ with a learned s, the paper code's), ``l2_fixed`` (x/‖x‖),
            ``layer`` (LayerNorm) or ``none``.
        norm_first: pre-norm instead of post-norm.
        bias: biases in every linear map.
        readout: ``points`` or ``query``.
    """

    def __init__(
        self,
        dim: Annotated[int, Interval(ge=1)] = 64,
        heads: Annotated[int, Interval(ge=1)] = 1,
        rank: Annotated[int, Interval(ge=1)] = 64,
        layers: Annotated[int, Interval(ge=1)] = 1,
        ff: Annotated[int, Interval(ge=0)] = 256,
        norm: Norm = "l2",
        norm_first: bool = False,
        bias: bool = True,
        readout: Literal["points", "query"] = "points",
        **kwargs: Any,
    ) -> None:
        self.check_hparams({"dim": dim, "rank": rank}, {})
        super().__init__(**kwargs)
        self._setup_metrics(dim)
        self.blocks = nn.ModuleList(
            RankTransformerBlock(dim, heads, rank, ff, norm, norm_first, bias)
            for _ in range(layers)
        )

    @classmethod
    def check_hparams(cls, hp: Mapping[str, Any], data: Mapping[str, Any]) -> None:
        """A head projects R^d to R^r, so r <= d."""
        if hp["rank"] > hp["dim"]:
            raise ValueError(
                f"rank={hp['rank']} > dim={hp['dim']}: a head projects R^dim to R^rank, so its "
                f"rank is at most dim; set rank <= {hp['dim']}"
            )

    @classmethod
    def footprint(cls, hp: Mapping[str, Any], data: Mapping[str, Any]) -> Footprint:
        """Per layer the weights and biases (4·H·r·d + 3·H·r + d, the feed-forward's
        2·d·ff + ff + d, one norm after attention and one after a feed-forward: a scale for
        ``l2``, 2·d for ``layer``) and, per sample, the (T, H·r) projections, the (H, T, T)
        logits and softmax, the (T, ff) hidden layer and a few (T, d) streams."""
        d, w, ff, layers = hp["dim"], hp["heads"] * hp["rank"], hp["ff"], hp["layers"]
        t = data.get("n_set", 2)
        norms = 2 if ff > 0 else 1
        per_norm = {"l2": 1, "layer": 2 * d}.get(hp["norm"], 0)
        per_layer = 4 * w * d + 3 * w + d + (2 * d * ff + ff + d if ff > 0 else 0)
        params = layers * (per_layer + norms * per_norm)
        # the model, its 2 metric columns + dict, the block list; per layer the block, the
        # attention and its 4 linears, 2 norms (or Identity) and the feed-forward's 4
        modules = 5 + layers * (8 + (4 if ff > 0 else 0))
        act = layers * (4 * t * w + 2 * hp["heads"] * t * t + 2 * t * ff + 6 * t * d)
        return Footprint(params=params, modules=modules, other=4 * data.get("batch_size", 1) * act)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, T, d) → (B, T·d) (``readout="points"``) or (B, d) (``"query"``)."""
        check_set_input(x, self.hparams.dim)
        query = self.hparams.readout == "query"
        key_mask = None
        if query:
            key_mask = torch.ones(x.shape[1], dtype=torch.bool, device=x.device)
            key_mask[0] = False
        h = x
        for block in self.blocks:
            h = block(h, key_mask)
        return h[:, 0] if query else h.flatten(1)

    def _full_rank_head(self) -> RankAttention:
        """The first block's attention; ``ValueError`` unless its heads have rank d."""
        attn = self.blocks[0].attn
        if attn.rank != self.hparams.dim:
            raise ValueError(
                f"the construction needs a full-rank head (rank = dim), got {attn.rank}"
            )
        return attn

    @torch.no_grad()
    def set_construction(self, temperature: float, out_scale: float) -> None:
        """The paper's farthest-point construction in the first block: head 0 with W_Q = −τI,
        W_K = W_V = I (coordinates 0..r−1), W_O = λI, every other weight and bias 0 (also the
        feed-forward, whose residual then passes the output through). With post-norm and
        τ, λ → ∞ the block outputs every point's farthest point; needs rank = dim."""
        attn = self._full_rank_head()
        for p in self.blocks[0].parameters():
            p.zero_()
        eye = torch.eye(self.hparams.dim, dtype=attn.q.weight.dtype)
        attn.q.weight[: attn.rank] = -temperature * eye
        attn.k.weight[: attn.rank] = eye
        attn.v.weight[: attn.rank] = eye
        attn.o.weight[:, : attn.rank] = out_scale * eye
        for norm in (self.blocks[0].norm1, self.blocks[0].norm2):
            if getattr(norm, "scale", None) is not None:
                norm.scale.fill_(1.0)
            elif isinstance(norm, nn.LayerNorm):
                norm.reset_parameters()

    @torch.no_grad()
    def construction_gap(self) -> dict[str, float]:
        """How close the first layer's head 0 is to the construction W_Q^ᵀW_K = c·I.

        Returns ``{"qk_scale": c, "qk_identity_gap": δ}`` of :func:`identity_gap` on the
        head's logit matrix W_Q^ᵀW_K/√r (c < 0 for the farthest point); only for r = d.
        """
        attn = self._full_rank_head()
        c, gap = identity_gap(attn.bilinear(0).double())
        return {"qk_scale": c, "qk_identity_gap": gap}

    def model_card_extra(self, metrics: dict[str, Any]) -> str:
        hp, data = self.hparams, dict(self.zoo_data_config or {})
        n_params = sum(p.numel() for p in self.parameters())
        text = (
            "## Setting\n\n"
            f"Target `{data.get('target')}` on sets of N = {data.get('n_set')} points uniform on "
            f"S^(d−1), d = {hp.dim}, fresh samples every epoch (resample = "
            f"{data.get('resample')}). {hp.layers} encoder block(s), each attention with "
            f"H = {hp.heads} head(s) of rank r = {hp.rank} (budget H·r·d = "
            f"{hp.heads * hp.rank * hp.dim} weights in each of W_Q, W_K, W_V, W_O), "
            f"feed-forward width {hp.ff}, norm `{hp.norm}` "
            f"({'pre' if hp.norm_first else 'post'}-norm), biases {hp.bias}; {n_params} trained "
            "parameters. `test/error` = mean over points of ‖f(x) − y‖² = MSE·d (the paper "
            "code's loss; predicting 0 scores 1), with a 95 % bootstrap interval over the n "
            "test sets; `test/loss_median` is the median per-set squared error."
            + measured(metrics, ("error", "loss_median"))
        )
        if hp.rank == hp.dim:
            gap = self.construction_gap()
            text += (
                "\n\nConstruction check (a function of the weights, no sampling error): the "
                "first head's logit matrix M = W_Qᵀ W_K / √r is c·I + E with c = tr(M)/d = "
                f"{gap['qk_scale']:.4g} and ‖E‖_F / ‖M‖_F = {gap['qk_identity_gap']:.4g} "
                "(0 for the exact construction c·I with c → −∞; ≈ 1 for a random matrix)."
            )
        return text
