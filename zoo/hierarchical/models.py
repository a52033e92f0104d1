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
``argmax p(root | leaves)``). Validation and test compare with exact BP on the same batch and
record, per sequence, whether it is one of the model's training sequences (``train_overlap``:
0 by construction of the ``ghm`` splits, measured).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.core.config import Footprint, Interval, safe_pow
from zoo.core.evaluation import Columns, Statistic, format_metric, mean, proportion, ratio
from zoo.core.module import ZooModule
from zoo.core.registry import register_model
from zoo.hierarchical import bp
from zoo.hierarchical.data import GHMDataModule, Grammar, build_grammar, contains, distinct

__all__ = ["ConvNetBP", "UNetBP"]

PAPER = (
    "Mei, 'U-Nets as Belief Propagation: Efficient Classification, Denoising, and Diffusion "
    "in Generative Hierarchical Models' (2024)"
)
_SIZE_KEYS = ("n_symbols", "branching", "depth")
_GRAMMAR_KEYS = (
    *_SIZE_KEYS,
    "grammar",
    "grammar_seed",
    "n_rules",
    "concentration",
    "n_classes",
)


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
        self._train: tuple[str, Tensor] | None = None

    def grammar(self) -> Grammar | None:
        """The exact reference: the grammar of :attr:`data_config` (``None`` for non-GHM data),
        rebuilt only when the grammar keys or the device change."""
        cfg = self.data_config
        if cfg.get("name") != "ghm":
            return None
        key = (*(cfg.get(k) for k in _GRAMMAR_KEYS), self.device)
        if self._ref is None or self._ref[0] != key:
            self._ref = (key, build_grammar(cfg).to(self.device))
        return self._ref[1]

    def on_train_split(self, split: tuple[Tensor, ...]) -> None:
        """Record the clean training sequences: ``leaves`` of ``(y, leaves, sigma, root)`` or
        of ``(leaves, root)``."""
        self._train = ("fit", split[1] if len(split) == 4 else split[0])

    def training_sequences(self) -> Tensor | None:
        """The clean training sequences (n_train, N) long: those this process trained on, else
        regenerated from :attr:`zoo_data_config` (a loaded checkpoint's training data; cached;
        ``None`` for non-GHM data)."""
        if self._train is not None and self._train[0] == "fit":
            return self._train[1].to(self.device)
        cfg = dict(self.zoo_data_config or {})
        if cfg.get("name") != "ghm":
            return None
        key = repr(sorted(cfg.items()))
        if self._train is None or self._train[0] != key:
            kwargs = {k: v for k, v in cfg.items() if k not in ("name", "device")}
            split = GHMDataModule(**kwargs, device="cpu").split("train")
            self._train = (key, split[1] if cfg.get("task") == "denoising" else split[0])
        return self._train[1].to(self.device)

    def _seen(self, leaves: Tensor) -> Tensor:
        """(B,) float: 1 where a sequence is one of the training sequences."""
        train = self.training_sequences()
        if train is None:
            return torch.zeros(len(leaves), dtype=torch.float64, device=leaves.device)
        return contains(train, leaves).double()

    def _leaves_len(self) -> int:
        return self.hparams.branching**self.hparams.depth

    @staticmethod
    def _columns(model: tuple[str, ...], bayes: tuple[str, ...]) -> nn.ModuleDict:
        """Per-example :class:`Columns` of each stage: ``<stage>_model`` (the network's) and
        ``<stage>_bayes`` (exact BP's, recorded only on GHM data)."""
        return nn.ModuleDict(
            {
                f"{stage}_{kind}": Columns(names)
                for stage in ("val", "test")
                for kind, names in (("model", model), ("bayes", bayes))
            }
        )

    def _epoch_columns(self, stage: str) -> dict[str, Tensor]:
        """The stage's columns ``{name: (n,)}`` (empty before any batch), then reset."""
        model, bayes = self.eval_columns[f"{stage}_model"], self.eval_columns[f"{stage}_bayes"]
        out: dict[str, Tensor] = {}
        if model.n:
            out = model.compute()
            if bayes.n:
                out.update(bayes.compute())
        model.reset()
        bayes.reset()
        return out

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
            testing and log their grammatical fraction and symbol/root KLs with intervals over
            the samples (see :func:`zoo.hierarchical.diffusion.sample_statistics`; the L = 4
            checkpoint needs ~8192 for a root-KL half-width of 0.01 nat).
        diffusion_steps: sampler steps for that evaluation.
    """

    eval_hparams = ("diffusion_samples", "diffusion_steps")

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
        self.eval_columns = self._columns(
            ("mse", "leaf_acc"), ("bayes_mse", "bayes_leaf_acc", "seen")
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
        modules = 1 + enc_m + mid_m + 2 + depth * (1 + fuse_m) + 1 + 5  # + 4 Columns in a dict
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
        self.log_train("loss", loss, prog_bar=True)
        return loss

    def eval_step(self, split: str, batch: tuple[Tensor, ...]) -> None:
        """Per-sequence squared error and leaf accuracy of the model and of exact BP."""
        y, leaves, sigma = batch[:3]
        out = self(y, sigma)
        clean = F.one_hot(leaves, self.hparams.n_symbols).to(y.dtype)
        self.eval_columns[f"{split}_model"].update(
            mse=((out - clean) ** 2).mean((1, 2)),
            leaf_acc=(out.argmax(-1) == leaves).double().mean(-1),
        )
        grammar = self.grammar()
        if grammar is not None:
            bayes = bp.bayes_denoiser(grammar, y, sigma)
            self.eval_columns[f"{split}_bayes"].update(
                bayes_mse=((bayes - clean) ** 2).mean((1, 2)),
                bayes_leaf_acc=(bayes.argmax(-1) == leaves).double().mean(-1),
                seen=self._seen(leaves),
            )

    def eval_epoch_end(self, split: str) -> None:
        """Log the denoising metrics (``loss`` = ``mse``, per coordinate; ``mse_ratio`` =
        mean MSE / mean Bayes MSE, resampled per sequence; ``train_overlap``: the fraction of
        sequences that are training sequences), then, on test, the diffusion samples'
        quality (``sample_*``, resampled per sample)."""
        columns = self._epoch_columns(split)
        if not columns:
            return
        stats: dict[str, Statistic] = {
            "loss": mean("mse"),
            "mse": mean("mse"),
            "leaf_acc": proportion("leaf_acc"),
        }
        if "bayes_mse" in columns:
            stats |= {
                "bayes_mse": mean("bayes_mse"),
                "mse_ratio": ratio("mse", "bayes_mse"),
                "bayes_leaf_acc": proportion("bayes_leaf_acc"),
                "train_overlap": proportion("seen"),
            }
        self.log_estimates(
            split, columns, stats, prog_bar="mse_ratio" if "bayes_mse" in columns else "loss"
        )
        grammar = self.grammar()
        hp = self.hparams
        if split == "test" and hp.sigma_cond and hp.diffusion_samples and grammar is not None:
            self._log_sample_quality(grammar)

    def _log_sample_quality(self, grammar: Grammar) -> None:
        """Draw ``diffusion_samples`` sequences by DDPM (generator seeded by the data seed) and
        log their quality as ``test/sample_*`` (see
        :func:`zoo.hierarchical.diffusion.sample_statistics`), resampled per sample."""
        from zoo.hierarchical.diffusion import sample, sample_columns, sample_statistics

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
        train = self.training_sequences()
        columns = sample_columns(grammar, leaves, train)
        stats = sample_statistics(grammar, copies=train is not None)
        if not columns["grammatical"].any():  # kl_root is undefined without a grammatical sample
            del stats["kl_root"]
        self.log_estimates("test", columns, {f"sample_{k}": f for k, f in stats.items()})

    def model_card_extra(self, metrics: dict[str, Any]) -> str:
        return _card_extra(
            self, metrics, (("mse", "bayes_mse"), ("leaf_acc", "bayes_leaf_acc")), "mse_ratio"
        )


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
        self.eval_columns = self._columns(("loss", "acc"), ("bayes_acc", "seen"))

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
        self.log_train("loss", loss, prog_bar=True)
        return loss

    def eval_step(self, split: str, batch: tuple[Tensor, ...]) -> None:
        """Per-sequence cross-entropy and correctness of the model and of exact BP."""
        leaves, root = batch[:2]
        logits = self(leaves)
        self.eval_columns[f"{split}_model"].update(
            loss=F.cross_entropy(logits, root, reduction="none"),
            acc=(logits.argmax(-1) == root).double(),
        )
        grammar = self.grammar()
        if grammar is not None:
            self.eval_columns[f"{split}_bayes"].update(
                bayes_acc=bp.bayes_accuracy(grammar, leaves, root), seen=self._seen(leaves)
            )

    def eval_epoch_end(self, split: str) -> None:
        """Log ``loss``, ``acc`` and, on GHM data, ``bayes_acc``, ``acc_ratio`` = mean
        accuracy / mean BP accuracy (resampled per sequence) and ``train_overlap``."""
        columns = self._epoch_columns(split)
        if not columns:
            return
        stats: dict[str, Statistic] = {"loss": mean("loss"), "acc": proportion("acc")}
        if "bayes_acc" in columns:
            stats |= {
                "bayes_acc": proportion("bayes_acc"),
                "acc_ratio": ratio("acc", "bayes_acc"),
                "train_overlap": proportion("seen"),
            }
        self.log_estimates(
            split, columns, stats, prog_bar="acc_ratio" if "bayes_acc" in columns else "acc"
        )

    def model_card_extra(self, metrics: dict[str, Any]) -> str:
        return _card_extra(self, metrics, (("acc", "bayes_acc"),), "acc_ratio")


def _heldout_lines(module: _BPModule, grammar: Grammar, metrics: Mapping[str, Any]) -> list[str]:
    """Card lines on generalisation: distinct sequences of the grammar and of the training
    set, and the measured overlap of the test sequences with the training ones."""
    train = module.training_sequences()
    cfg = module.zoo_data_config or {}
    try:
        total = grammar.n_sequences()
    except ValueError:  # an ambiguous sparse grammar: no exact count
        return []
    lines = ["### Held-out sequences", ""]
    if train is not None:
        lines += [
            f"The grammar generates {total:,} distinct sequences, {total / len(train):,.0f}× "
            f"the {len(train)} training sequences ({distinct(train)} distinct). Validation and "
            "test sequences are drawn from disjoint parts of the sequence space (a fixed hash "
            f"of the sequence, `holdout` = {cfg.get('holdout', 0.1):g} of it each), so they "
            "are never training sequences, for any data seed."
        ]
    if "test/train_overlap" in metrics:
        lines += [
            "",
            f"- `train_overlap` = {format_metric(metrics, 'test/train_overlap')}: the measured "
            "fraction of test sequences that are training sequences (exact comparison; at 0 "
            "the interval is Clopper–Pearson's).",
        ]
    return [*lines, ""]


def _card_extra(
    module: _BPModule,
    metrics: Mapping[str, Any],
    pairs: tuple[tuple[str, str], ...],
    ratio_key: str,
) -> str:
    """Model-card section: the grammar, the model-vs-BP comparison on the same test examples
    and, when measured, the diffusion samples' quality; values as ``value [lo, hi], n = N``
    (95 % bootstrap interval over the test examples)."""
    lines = ["## Model vs exact belief propagation", ""]
    grammar = module.grammar()
    if grammar is not None:
        lines += [f"Grammar: {grammar.describe()}.", ""]
        lines += _heldout_lines(module, grammar, metrics)
    rows = [
        (key, format_metric(metrics, f"test/{key}"), format_metric(metrics, f"test/{bayes}"))
        for key, bayes in pairs
        if f"test/{key}" in metrics and f"test/{bayes}" in metrics
    ]
    if rows:
        lines += ["| metric | model | exact BP (Bayes-optimal) |", "|---|---|---|"]
        lines += [f"| {key} | {model} | {bayes} |" for key, model, bayes in rows] + [""]
    if f"test/{ratio_key}" in metrics:
        lines += [
            f"`{ratio_key}` = {format_metric(metrics, f'test/{ratio_key}')} (a ratio of means "
            "over the same examples; the interval resamples examples jointly).",
            "",
        ]
    levels = (f"grammatical_l{lv}" for lv in range(1, module.hparams.depth))
    names = ("grammatical", *levels, "copy")
    samples = [k for k in (*names, "kl_symbols", "kl_root") if f"test/sample_{k}" in metrics]
    if samples:
        lines += ["### Diffusion samples", ""]
        lines += [f"- `sample_{k}` = {format_metric(metrics, f'test/sample_{k}')}" for k in samples]
        lines += [
            "",
            "DDPM samples with the model as the denoiser (`diffusion_samples` sequences, "
            "`diffusion_steps` steps, generator seeded by the data seed); `n` counts samples and "
            "the intervals resample them. `sample_grammatical` is the fraction with p(x) > 0, "
            "`sample_grammatical_l<ℓ>` the fraction whose every level-ℓ node can generate its "
            "block of leaves (grammatical up to height L − ℓ), `sample_copy` the fraction that "
            "are training sequences (memorisation). The KLs (of the position-averaged symbol "
            "frequencies to "
            "the exact leaf marginals, and of the BP roots of the grammatical samples to the root "
            "prior) are plug-in estimates minus their first-order bias (Miller–Madow, see "
            "`zoo.hierarchical.diffusion.kl_estimate`), so their expectation does not depend "
            "on the number of samples to first order; near 0 they can be slightly negative.",
            "",
        ]
    return "\n".join(lines)
