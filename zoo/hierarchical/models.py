"""U-Net and ConvNet whose layers follow the belief-propagation schedule of a GHM tree.

Features live on the tree: level ``ℓ`` is a (B, W, m^ℓ) tensor, position ``i`` = node ``i``.

- Encoder level ``ℓ+1 → ℓ`` (upward message ``u_v = ψ (u_{c_1} ⊗ … ⊗ u_{c_m})``): a patch
  convolution with kernel = stride = ``m`` (it sees exactly the ``m`` children of a node)
  followed by a pointwise MLP, ``h_ℓ = φ(W₂ φ(Conv_m(h_{ℓ+1})))``.
- Decoder level ``ℓ → ℓ+1`` (downward message ``o_c`` from ``o_v`` and the siblings' ``u``):
  an upsampling ``ConvTranspose1d`` with kernel = stride = ``m``, joined by a long skip to the
  encoder features of the same level (the upward messages), then a pointwise MLP:
  ``g_{ℓ+1} = MLP([Up_m(g_ℓ); h_{ℓ+1}])``. The leaf posterior ``∝ o_i u_i`` is read out by a
  pointwise head and a softmax over symbols (the Bayes denoiser ``E[E x | y]`` of the one-hot
  embedding lies in the simplex).
- Optional σ-conditioning: ``log σ`` is an input channel, and a FiLM
  ``h ← h ⊙ (1 + γ_ℓ(e)) + β_ℓ(e)``, ``e = MLP(log σ)``, follows every level.

``convnet_bp`` is the encoder alone with a linear head on the root features (Bayes classifier
``argmax p(root | leaves)``). Validation and test compare with exact BP on the same batch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MeanMetric

from zoo.core.config import Footprint, Interval, safe_pow
from zoo.core.module import ZooModule
from zoo.core.registry import register_model
from zoo.hierarchical import bp
from zoo.hierarchical.data import Grammar, build_grammar

__all__ = ["ConvNetBP", "UNetBP"]

PAPER = (
    "Mei, 'U-Nets as Belief Propagation: Efficient Classification, Denoising, and Diffusion "
    "in Generative Hierarchical Models' (2024)"
)
_SIZE_KEYS = ("n_symbols", "branching", "depth")
_GRAMMAR_KEYS = (*_SIZE_KEYS, "grammar", "grammar_seed", "n_rules", "concentration")


class _Film(nn.Module):
    """``h ⊙ (1 + γ(e)) + β(e)``; h: (B, W, n), e: (B, E)."""

    def __init__(self, emb: int, width: int) -> None:
        super().__init__()
        self.proj = nn.Linear(emb, 2 * width)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, h: Tensor, e: Tensor) -> Tensor:
        gamma, beta = self.proj(e)[..., None].chunk(2, dim=1)
        return h * (1 + gamma) + beta


def _mlp(c_in: int, width: int, layers: int) -> nn.Sequential:
    """Pointwise (kernel-1) MLP with ``layers`` GELU layers: (B, c_in, n) → (B, width, n)."""
    mods: list[nn.Module] = []
    for i in range(layers):
        mods += [nn.Conv1d(c_in if i == 0 else width, width, 1), nn.GELU()]
    return nn.Sequential(*mods)


def _mlp_size(c_in: int, width: int, layers: int) -> tuple[int, int]:
    """(parameters, modules) of :func:`_mlp`."""
    if layers == 0:
        return 0, 1
    return c_in * width + width + (layers - 1) * (width * width + width), 1 + 2 * layers


def _encoder_size(
    c_in: int, width: int, branching: int, depth: int, layers: int
) -> tuple[int, int]:
    """(parameters, modules) of :class:`_Encoder`."""
    inp_p, inp_m = _mlp_size(c_in, width, 1)
    mlp_p, mlp_m = _mlp_size(width, width, layers)
    level_p = width * width * branching + width + mlp_p
    return inp_p + depth * level_p, 2 + inp_m + depth * (3 + mlp_m)


def _activations(hp: Mapping[str, Any], data: Mapping[str, Any], per_node: int) -> float:
    """Bytes of one training batch: ``per_node`` float32 channels at every tree node
    (Σ_ℓ m^ℓ nodes per sample) and the (N, S) inputs and outputs."""
    m, width = hp["branching"], hp["width"]
    leaves = safe_pow(m, hp["depth"])
    nodes = leaves * m / (m - 1)  # Σ_ℓ m^ℓ < m^(L+1)/(m-1)
    return data.get("batch_size", 1) * 4 * (nodes * width * per_node + 4 * leaves * hp["n_symbols"])


class _Encoder(nn.Module):
    """Leaves (B, C, m^L) → features of every level ``[h_0 (B, W, 1), …, h_L (B, W, m^L)]``."""

    def __init__(self, c_in: int, width: int, branching: int, depth: int, mlp_layers: int) -> None:
        super().__init__()
        self.inp = _mlp(c_in, width, 1)
        self.down = nn.ModuleList(
            nn.Sequential(
                nn.Conv1d(width, width, branching, stride=branching),
                nn.GELU(),
                _mlp(width, width, mlp_layers),
            )
            for _ in range(depth)
        )

    def forward(
        self, x: Tensor, film: list[Any] | None = None, e: Tensor | None = None
    ) -> list[Tensor]:
        h = self.inp(x)
        feats = [h]
        for i, down in enumerate(self.down):
            h = down(h)
            if film is not None:
                h = film[i](h, e)
            feats.append(h)
        return feats[::-1]


class _BPModule(ZooModule):
    """Shared plumbing: tree sizes, the BP reference grammar, size checks against the data."""

    def __init__(
        self,
        *,
        n_symbols: Annotated[int, Interval(ge=2)] = 8,
        branching: Annotated[int, Interval(ge=2)] = 2,
        depth: Annotated[int, Interval(ge=1)] = 4,
        width: Annotated[int, Interval(ge=1)] = 64,
        mlp_layers: Annotated[int, Interval(ge=0)] = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._ref: tuple[tuple, Grammar] | None = None

    def grammar(self) -> Grammar | None:
        """The exact reference: the grammar of :attr:`data_config` (``None`` for non-GHM data),
        rebuilt only when the grammar keys or the device change."""
        cfg = self.data_config
        if cfg.get("name") != "ghm":
            return None
        key = (*(cfg[k] for k in _GRAMMAR_KEYS), self.device)
        if self._ref is None or self._ref[0] != key:
            self._ref = (key, build_grammar(cfg).to(self.device))
        return self._ref[1]

    def _leaves_len(self) -> int:
        return self.hparams.branching**self.hparams.depth

    @staticmethod
    def _training_state(params: float) -> float:
        """Gradients and two optimiser moments per parameter, in bytes."""
        return 12 * params


@register_model(
    "unet_bp_sigma",
    data="ghm",
    shared=_SIZE_KEYS,
    defaults={"sigma_cond": True},
    data_defaults={"task": "denoising", "sigma_dist": "loguniform"},
    description="σ-conditioned U-Net denoiser of GHM sequences, usable as a diffusion score model.",
    paper=PAPER,
)
@register_model(
    "unet_bp_noskip",
    data="ghm",
    shared=_SIZE_KEYS,
    defaults={"skips": False},
    data_defaults={"task": "denoising"},
    description="Baseline: unet_bp without its long skips (a plain conv encoder-decoder).",
    paper=PAPER,
)
@register_model(
    "unet_bp",
    data="ghm",
    shared=_SIZE_KEYS,
    data_defaults={"task": "denoising"},
    paper=PAPER,
)
class UNetBP(_BPModule):
    """U-Net denoiser of GHM leaves whose levels follow the BP message schedule.

    Args:
        n_symbols, branching, depth: ``S``, ``m``, ``L`` of the data (``N = m^L`` leaves).
        width: channels ``W`` of every level. mlp_layers: pointwise layers per level.
        skips: long skips joining encoder and decoder levels (``False``: a plain CNN).
        sigma_cond: condition on ``log σ`` (input channel + FiLM at every level).
        diffusion_samples: σ-conditioned models sample this many sequences at the end of
            testing and log their grammatical fraction (see :mod:`zoo.hierarchical.diffusion`).
        diffusion_steps: sampler steps for that evaluation.
    """

    def __init__(
        self,
        *,
        skips: bool = True,
        sigma_cond: bool = False,
        diffusion_samples: Annotated[int, Interval(ge=0)] = 512,
        diffusion_steps: Annotated[int, Interval(ge=1)] = 100,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        hp = self.hparams
        S, W, m, L = hp.n_symbols, hp.width, hp.branching, hp.depth
        self.encoder = _Encoder(S + int(sigma_cond), W, m, L, hp.mlp_layers)
        self.mid = _mlp(W, W, max(1, hp.mlp_layers))
        self.up = nn.ModuleList(nn.ConvTranspose1d(W, W, m, stride=m) for _ in range(L))
        self.fuse = nn.ModuleList(
            _mlp(W * (2 if skips else 1), W, 1 + hp.mlp_layers) for _ in range(L)
        )
        self.head = nn.Conv1d(W, S, 1)
        if sigma_cond:
            self.sigma_emb = nn.Sequential(nn.Linear(1, W), nn.GELU(), nn.Linear(W, W), nn.GELU())
            self.film_enc = nn.ModuleList(_Film(W, W) for _ in range(L))
            self.film_dec = nn.ModuleList(_Film(W, W) for _ in range(L + 1))
        self.metrics = nn.ModuleDict(
            {
                f"{split}_{k}": MeanMetric()
                for split in ("val", "test")
                for k in ("mse", "bayes_mse", "leaf_acc", "bayes_leaf_acc")
            }
        )

    @classmethod
    def footprint(cls, hp: Mapping[str, Any], data: Mapping[str, Any]) -> Footprint:
        """Weights and modules as built by ``__init__``, and one training batch (~7 + 4k
        channels of width W kept per tree node: encoder, upsampling, skip join, fused MLP)."""
        s, w, m, depth, k = (
            hp[x] for x in ("n_symbols", "width", "branching", "depth", "mlp_layers")
        )
        sigma = int(hp["sigma_cond"])
        enc_p, enc_m = _encoder_size(s + sigma, w, m, depth, k)
        mid_p, mid_m = _mlp_size(w, w, max(1, k))
        fuse_p, fuse_m = _mlp_size(w * (2 if hp["skips"] else 1), w, 1 + k)
        params = enc_p + mid_p + depth * (w * w * m + w + fuse_p) + w * s + s
        modules = 1 + enc_m + mid_m + 2 + depth * (1 + fuse_m) + 1 + 9
        if sigma:
            params += 2 * w + w * w + w + (2 * depth + 1) * (2 * w * w + 2 * w)
            modules += 5 + 2 + (2 * depth + 1) * 2
        act = _activations(hp, data, 7 + 4 * k) + cls._training_state(params)
        return Footprint(params=params, modules=modules, other=act)

    def forward(self, y: Tensor, sigma: Tensor | None = None) -> Tensor:
        """Denoise: y (B, N, S), sigma (B,) (iff ``sigma_cond``) → ``Ê[E x | y]`` (B, N, S)."""
        hp = self.hparams
        if y.dim() != 3 or y.shape[1:] != (self._leaves_len(), hp.n_symbols):
            raise ValueError(
                f"y must be (B, {self._leaves_len()}, {hp.n_symbols}), got {tuple(y.shape)}"
            )
        x = y.transpose(1, 2)  # (B, S, N)
        e = None
        if hp.sigma_cond:
            if sigma is None:
                raise ValueError("this U-Net is σ-conditioned: pass sigma (B,)")
            log_s = torch.as_tensor(sigma, dtype=y.dtype, device=y.device).expand(y.shape[0]).log()
            x = torch.cat([x, log_s[:, None, None].expand(-1, 1, x.shape[-1])], 1)
            e = self.sigma_emb(log_s[:, None])
        feats = self.encoder(x, list(self.film_enc) if hp.sigma_cond else None, e)
        g = self.mid(feats[0])
        if hp.sigma_cond:
            g = self.film_dec[0](g, e)
        for level in range(hp.depth):
            g = self.up[level](g)
            if hp.skips:
                g = torch.cat([g, feats[level + 1]], 1)
            g = self.fuse[level](g)
            if hp.sigma_cond:
                g = self.film_dec[level + 1](g, e)
        return self.head(g).softmax(1).transpose(1, 2)

    def predict_step(self, batch: tuple[Tensor, ...], batch_idx: int = 0) -> Tensor:
        """``Ê[E x | y]`` (B, N, S) for a ``(y, leaves, sigma, root)`` denoising batch."""
        y, _, sigma = batch[:3]
        return self(y, sigma if self.hparams.sigma_cond else None)

    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        y, leaves, sigma = batch[:3]
        loss = F.mse_loss(self(y, sigma), F.one_hot(leaves, self.hparams.n_symbols).to(y.dtype))
        self.log("train/loss", loss, prog_bar=True, sync_dist=True)
        return loss

    def eval_step(self, split: str, batch: tuple[Tensor, ...]) -> None:
        y, leaves, sigma = batch[:3]
        out = self(y, sigma)
        clean = F.one_hot(leaves, self.hparams.n_symbols).to(y.dtype)
        mse = ((out - clean) ** 2).mean((1, 2))
        self.metrics[f"{split}_mse"].update(mse)
        self.metrics[f"{split}_leaf_acc"].update((out.argmax(-1) == leaves).float().mean(-1))
        grammar = self.grammar()
        if grammar is not None:
            bayes = bp.bayes_denoiser(grammar, y, sigma)
            self.metrics[f"{split}_bayes_mse"].update(((bayes - clean) ** 2).mean((1, 2)))
            self.metrics[f"{split}_bayes_leaf_acc"].update(
                (bayes.argmax(-1) == leaves).float().mean(-1)
            )
        self.log(f"{split}/loss", mse.mean(), sync_dist=True, prog_bar=split == "val")

    def _log_eval_metrics(self, split: str) -> None:
        m = {
            k: self.metrics[f"{split}_{k}"]
            for k in ("mse", "bayes_mse", "leaf_acc", "bayes_leaf_acc")
        }
        if m["mse"].update_count == 0:
            return
        mse = m["mse"].compute()
        self.log(f"{split}/mse", mse, sync_dist=False)
        self.log(f"{split}/leaf_acc", m["leaf_acc"].compute(), sync_dist=False)
        if m["bayes_mse"].update_count > 0:
            bayes = m["bayes_mse"].compute()
            self.log(f"{split}/bayes_mse", bayes, sync_dist=False)
            self.log(f"{split}/mse_ratio", mse / bayes, sync_dist=False, prog_bar=split == "val")
            self.log(f"{split}/bayes_leaf_acc", m["bayes_leaf_acc"].compute(), sync_dist=False)
        for metric in m.values():
            metric.reset()

    def eval_epoch_end(self, split: str) -> None:
        self._log_eval_metrics(split)
        grammar = self.grammar()
        if split != "test" or not (
            self.hparams.sigma_cond and self.hparams.diffusion_samples and grammar is not None
        ):
            return
        from zoo.hierarchical.diffusion import sample, sample_quality

        hp = self.data_config
        gen = torch.Generator(device=self.device).manual_seed(int(hp.get("seed", 0)))
        n, steps = self.hparams.diffusion_samples, self.hparams.diffusion_steps
        if self.trainer.fast_dev_run:  # a smoke test: exercise the sampler, cheaply
            n, steps = min(n, 16), min(steps, 4)
        leaves = sample(
            self,
            n=n,
            n_leaves=self._leaves_len(),
            n_symbols=self.hparams.n_symbols,
            sigma_max=float(hp.get("sigma_max", 10.0)),
            sigma_min=float(hp.get("sigma_min", 0.05)),
            steps=steps,
            generator=gen,
        )
        for k, v in sample_quality(grammar, leaves).items():
            if math.isfinite(v):  # kl_root is undefined when no sample is grammatical
                self.log(f"test/sample_{k}", v, sync_dist=False)

    def model_card_extra(self, metrics: dict[str, Any]) -> str:
        return _card_extra(self, metrics, "mse", "bayes_mse", "mse_ratio")


@register_model(
    "convnet_bp",
    data="ghm",
    shared=_SIZE_KEYS,
    data_defaults={"task": "classification"},
    paper=PAPER,
)
class ConvNetBP(_BPModule):
    """ConvNet root classifier of GHM sequences: the BP encoder plus a head at the root.

    Args:
        n_symbols, branching, depth: ``S``, ``m``, ``L`` of the data.
        width: channels ``W`` of every level. mlp_layers: pointwise layers per level.
    """

    monitor = "val/acc"
    monitor_mode = "max"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        hp = self.hparams
        self.encoder = _Encoder(hp.n_symbols, hp.width, hp.branching, hp.depth, hp.mlp_layers)
        self.head = nn.Linear(hp.width, hp.n_symbols)
        self.metrics = nn.ModuleDict(
            {f"{s}_{k}": MeanMetric() for s in ("val", "test") for k in ("acc", "bayes_acc")}
        )

    @classmethod
    def footprint(cls, hp: Mapping[str, Any], data: Mapping[str, Any]) -> Footprint:
        """Weights and modules as built by ``__init__``, and one training batch (~2 + 2k
        channels of width W kept per tree node)."""
        s, w = hp["n_symbols"], hp["width"]
        enc_p, enc_m = _encoder_size(s, w, hp["branching"], hp["depth"], hp["mlp_layers"])
        params = enc_p + w * s + s
        act = _activations(hp, data, 2 + 2 * hp["mlp_layers"]) + cls._training_state(params)
        return Footprint(params=params, modules=enc_m + 7, other=act)

    def forward(self, leaves: Tensor) -> Tensor:
        """Root logits: leaves (B, N) long (or soft/one-hot (B, N, S)) → (B, S)."""
        hp = self.hparams
        x = F.one_hot(leaves, hp.n_symbols).float() if leaves.dim() == 2 else leaves
        if x.shape[1:] != (self._leaves_len(), hp.n_symbols):
            raise ValueError(
                f"leaves must be (B, {self._leaves_len()}) or (B, {self._leaves_len()}, "
                f"{hp.n_symbols}), got {tuple(leaves.shape)}"
            )
        return self.head(self.encoder(x.transpose(1, 2))[0][..., 0])

    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        leaves, root = batch[:2]
        loss = F.cross_entropy(self(leaves), root)
        self.log("train/loss", loss, prog_bar=True, sync_dist=True)
        return loss

    def eval_step(self, split: str, batch: tuple[Tensor, ...]) -> None:
        leaves, root = batch[:2]
        logits = self(leaves)
        self.log(f"{split}/loss", F.cross_entropy(logits, root), sync_dist=True)
        self.metrics[f"{split}_acc"].update((logits.argmax(-1) == root).float())
        grammar = self.grammar()
        if grammar is not None:
            self.metrics[f"{split}_bayes_acc"].update(bp.bayes_accuracy(grammar, leaves, root))

    def eval_epoch_end(self, split: str) -> None:
        acc, bayes = self.metrics[f"{split}_acc"], self.metrics[f"{split}_bayes_acc"]
        if acc.update_count == 0:
            return
        a = acc.compute()
        self.log(f"{split}/acc", a, prog_bar=split == "val")
        if bayes.update_count > 0:
            b = bayes.compute()
            self.log(f"{split}/bayes_acc", b)
            self.log(f"{split}/acc_ratio", a / b, prog_bar=split == "val")
        acc.reset()
        bayes.reset()

    def model_card_extra(self, metrics: dict[str, Any]) -> str:
        return _card_extra(self, metrics, "acc", "bayes_acc", "acc_ratio")


def _card_extra(
    module: _BPModule, metrics: dict[str, Any], model_key: str, bayes_key: str, ratio_key: str
) -> str:
    """Model-card section: the grammar and the model-vs-BP comparison."""
    lines = ["## Model vs exact belief propagation", ""]
    grammar = module.grammar()
    if grammar is not None:
        lines += [f"Grammar: {grammar.describe()}.", ""]
    vals = [metrics.get(f"test/{k}") for k in (model_key, bayes_key, ratio_key)]
    if all(isinstance(v, float) for v in vals):
        lines += [
            f"Test `{model_key}` = {vals[0]:.4g} vs the exact BP (Bayes-optimal) `{bayes_key}` = "
            f"{vals[1]:.4g} on the same examples: ratio {vals[2]:.4f}.",
            "",
        ]
    return "\n".join(lines)
