"""Node-classification GNNs on SBM graphs for the neural-collapse study.

Both models share the reference architecture of Kothapalli, Tirer & Bruna (2023)::

    H⁰     = X W_in                                   projection, no bias
    Hˡ⁺¹   = norm(ReLU(conv_ℓ(Hˡ)))                   ℓ = 0 … L−1
    logits = conv_L(Hᴸ)                               d → C, no bias

with, for ``gnn_nc`` (PyG ``SAGEConv`` with mean aggregation, no bias — exactly this map),

    conv(H) = H W₁ + (Â H) W₂,   (Â H)_i = mean_{j ∈ N(i)} h_j   (Â = D⁻¹A; W₁ optional)

The registered variants of ``gnn_nc`` are the paper's other configurations:
``gnn_nc_noself`` (no ``W₁``: ``conv(H) = (ÂH) W₂``), ``gnn_nc_paper`` and
``gnn_nc_paper_noself`` (graphs of the paper code's effective density ``1 − (1 − p)²``,
:data:`PAPER_DENSITY`), ``gnn_nc_c4`` (C = 4, p = 0.1, q = 0.0068, width 16, lr 0.006); they
also report ``{stage}/nc1_depth_{h,ah}``, the depth at which the mean log₁₀ NC1 first falls
below −1 (``nc1_depth_level``).

and for ``gcn_nc`` (PyG ``GCNConv``),

    conv(H) = (Â H) W,   Â = D̃^{-1/2}(A + I)D̃^{-1/2}.

Features are noise, so communities are identifiable only up to a label permutation: the
loss is the MSE to one-hot labels minimised over the C! permutations *per graph*
(:func:`permutation_invariant_mse`), and accuracy is the permutation-maximised
``overlap = (acc − 1/C)/(1 − 1/C)`` (:func:`zoo.graphs.collapse.overlap`).

Logged metrics (``stage`` ∈ train/val/test): ``{stage}/loss``, ``{stage}/overlap``,
``{stage}/acc`` (per epoch; plus ``train/loss_step`` on the trainer's logging steps), on
val/test the means over graphs of each graph's loss, overlap and accuracy. Per layer on
val/test, for the layer features ``Hˡ`` (``nc_h``) and the aggregated features ``ÂHˡ``
(``nc_ah``), ℓ = 0 … L, summaries over graphs of each graph's NC values
(:func:`zoo.graphs.collapse.nc_statistics`)::

    {stage}/nc_{h,ah}/layer_{ℓ:02d}/{nc1,nc1_tilde}_{log10_mean,log10_std,median}
    {stage}/nc_{h,ah}/layer_{ℓ:02d}/nc2                 (+ nc3, nc4 at ℓ = L; means)

On the test stage every one of them is an estimate over the test graphs, logged with its
95 % bootstrap interval and count (``_ci_lo``, ``_ci_hi``, ``_n``; :mod:`zoo.core.evaluation`).
On the training graphs, ``train/nc_h/last/{nc1,nc1_tilde,nc2}`` for ``Hᴸ`` every epoch
(nodes pooled over the epoch's graphs, values only). Each graph's labels are first aligned
to the permutation the model predicts. NC3/NC4 at the last layer use the part of the final
conv that reads those features: ``W₁`` for ``Hᴸ`` (only with the self weight), ``W₂``
(``W`` for GCN) for ``ÂHᴸ``.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torch_geometric.data import Batch, Data
from torch_geometric.nn import GCNConv, InstanceNorm, SAGEConv
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.utils import scatter

from zoo.core.config import Footprint, Interval
from zoo.core.evaluation import Columns, Statistic, format_metric, mean
from zoo.core.module import ZooModule
from zoo.core.registry import register_model
from zoo.graphs.collapse import (
    LOG_SUMMARY_COLUMNS,
    CollapseMetric,
    LayerwiseCollapse,
    best_permutation,
    crossing_depth,
    nc_statistics,
    summary_table,
)
from zoo.graphs.data import SBMDataModule

__all__ = [
    "GCNCollapse",
    "GNNCollapse",
    "MeanGNN",
    "label_permutations",
    "nc_log_key",
    "permutation_invariant_mse",
]

PAPER = (
    "Kothapalli, Tirer & Bruna, 'A Neural Collapse Perspective on Feature Evolution in Graph "
    "Neural Networks' (NeurIPS 2023): partial NC1 in node classification on SBM graphs"
)
NC_KINDS = ("h", "ah")  # layer features Hˡ and aggregated features ÂHˡ
#: per-graph columns of the val/test stages and the headline metrics (means over graphs)
GRAPH_COLUMNS = ("loss", "overlap", "acc")


def nc_log_key(stage: str, kind: str, layer: int | str, metric: str) -> str:
    """The logged name of one NC value, e.g. ``val/nc_h/layer_07/nc1``.

    ``layer`` is an index (formatted ``layer_XX``) or a label such as ``"last"``.
    """
    where = f"layer_{layer:02d}" if isinstance(layer, int) else layer
    return f"{stage}/nc_{kind}/{where}/{metric}"


def label_permutations(num_classes: int, device: torch.device | None = None) -> Tensor:
    """All C! permutations of ``range(C)``: (C!, C) int64 (C ≤ 6)."""
    if not 2 <= num_classes <= 6:
        raise ValueError(f"n_classes={num_classes} must be in [2, 6] (C! permutations)")
    perms = list(itertools.permutations(range(num_classes)))
    return torch.tensor(perms, dtype=torch.long, device=device)


def permutation_invariant_mse(
    out: Tensor,
    labels: Tensor,
    batch: Tensor | None = None,
    num_graphs: int | None = None,
    reduction: Literal["mean", "none"] = "mean",
) -> Tensor:
    """Mean over graphs of ``min_π (1/(N_g C)) Σ_i ‖out_i − e_{π(y_i)}‖²``.

    Args:
        out: (N, C) network outputs.
        labels: (N,) classes in ``[0, C)``.
        batch: (N,) graph index of each node (PyG), ``None`` for one graph.
        num_graphs: G (default ``batch.max() + 1``).
        reduction: ``"mean"`` over graphs, or ``"none"``: the (G,) per-graph losses.

    Returns:
        Scalar loss (or (G,)). ``‖o − e_k‖² = ‖o‖² − 2 o_k + 1``, so every permutation
        costs one gather: O(N · C!) time, no (N, C!, C) tensor.
    """
    c = out.shape[1]
    perms = label_permutations(c, out.device)  # (P, C)
    picked = out.gather(1, perms[:, labels].T)  # (N, P): out_i[π(y_i)]
    per_node = (out.pow(2).sum(1, keepdim=True) - 2.0 * picked + 1.0) / c  # (N, P)
    if batch is None:
        per_graph = per_node.mean(0, keepdim=True)  # (1, P)
    else:
        g = int(batch.max()) + 1 if num_graphs is None else num_graphs
        per_graph = scatter(per_node, batch, dim=0, dim_size=g, reduce="mean")  # (G, P)
    losses = per_graph.min(1).values
    return losses if reduction == "none" else losses.mean()


class _SparseMatmul(torch.autograd.Function):
    """``Â @ H`` with a precomputed ``Âᵀ`` for the backward pass (``∂L/∂H = Âᵀ ∂L/∂(ÂH)``).

    Autograd through ``torch.sparse.mm`` re-derives the transpose on every call; reusing
    one CSR transpose per forward makes the backward as cheap as the forward.
    """

    @staticmethod
    def forward(ctx: Any, a: Tensor, a_t: Tensor, h: Tensor) -> Tensor:
        ctx.a_t = a_t
        return a @ h

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[None, None, Tensor]:
        return None, None, ctx.a_t @ grad


def propagation_matrix(
    edge_index: Tensor, num_nodes: int, kind: Literal["mean", "gcn"] = "mean"
) -> tuple[Tensor, Tensor]:
    """The sparse aggregation operator ``Â`` and its transpose, as CSR (N, N) float32.

    ``kind="mean"``: ``Â = D⁻¹A``, ``(ÂH)_i = mean_{j→i} h_j`` (0 for isolated nodes), the
    aggregation of ``SAGEConv(aggr="mean")``. ``kind="gcn"``: ``Â = D̃^{-1/2}(A+I)D̃^{-1/2}``,
    PyG's ``gcn_norm`` with self-loops. Edges ``j → i`` are ``edge_index[:, e] = (j, i)``
    (PyG's source-to-target flow). Cost O(N + E log E).
    """
    if kind == "gcn":
        ei, w = gcn_norm(edge_index, None, num_nodes, add_self_loops=True)
        src, dst = ei[0], ei[1]
    else:
        src, dst = edge_index[0], edge_index[1]
        deg = torch.bincount(dst, minlength=num_nodes).clamp_min(1)
        w = 1.0 / deg[dst].float()

    def csr(rows: Tensor, cols: Tensor) -> Tensor:
        order = torch.argsort(rows * num_nodes + cols)
        crow = torch.zeros(num_nodes + 1, dtype=torch.long, device=rows.device)
        crow[1:] = torch.cumsum(torch.bincount(rows, minlength=num_nodes), 0)
        with warnings.catch_warnings():  # "sparse CSR support is in beta"
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse_csr_tensor(
                crow, cols[order], w[order], (num_nodes, num_nodes), check_invariants=False
            )

    return csr(dst, src), csr(src, dst)


def aggregate(ctx: dict[str, Tensor], h: Tensor) -> Tensor:
    """``Â h`` for ``h: (N, d)`` with the operator of :func:`propagation_matrix`."""
    return _SparseMatmul.apply(ctx["a"], ctx["a_t"], h)


class GNNCollapse(ZooModule):
    """Base of the SBM node classifiers: projection, L conv blocks, conv to C classes.

    Subclasses build the convolutions (:meth:`make_conv`) and say how a conv splits into
    aggregation and linear maps (:meth:`conv`), which exposes ``ÂHˡ``.

    Args:
        feature_dim: F, input node features (= the data's ``feature_dim``).
        n_classes: C (= the data's ``n_classes``).
        width: d, hidden width.
        depth: L, number of conv blocks before the final conv.
        norm: ``"batch"`` (BatchNorm1d over the nodes of the batch, batch statistics also
            at evaluation), ``"instance"`` (per-graph InstanceNorm, affine), ``"none"``.
        track_collapse: compute the per-layer NC metrics on val/test (per graph) and the
            last-layer NC metrics on the training graphs (pooled).
        nc1_depth_level: also report ``{stage}/nc1_depth_{h,ah}``, the depth at which the
            mean over graphs of log₁₀ NC1 of Hˡ (ÂHˡ) first falls below this level
            (:func:`zoo.graphs.collapse.crossing_depth`, L + 1 when it never does; ``None``:
            not reported).
        **kwargs: optimiser hyper-parameters of :class:`zoo.core.ZooModule`.
    """

    monitor = "val/overlap"
    monitor_mode = "max"

    def __init__(
        self,
        feature_dim: Annotated[int, Interval(ge=1)] = 8,
        n_classes: Annotated[int, Interval(ge=2, le=6)] = 2,
        width: Annotated[int, Interval(ge=1)] = 8,
        depth: Annotated[int, Interval(ge=0)] = 32,
        norm: Literal["batch", "instance", "none"] = "batch",
        track_collapse: bool = True,
        nc1_depth_level: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if nc1_depth_level is not None and not track_collapse:
            raise ValueError("nc1_depth_level needs track_collapse=true (it is a statistic of NC1)")
        self.proj = nn.Linear(feature_dim, width, bias=False)
        convs = [self.make_conv(width, width) for _ in range(depth)]
        self.convs = nn.ModuleList([*convs, self.make_conv(width, n_classes)])
        self.norms = nn.ModuleList(self._make_norm(norm, width) for _ in range(depth))
        self._train_sums = torch.zeros(3)  # Σ over the epoch's graphs of (loss, acc, 1)
        # val/test: one row per graph (loss, overlap, acc), and per layer each graph's NC values
        self.graph_columns = nn.ModuleDict({s: Columns(GRAPH_COLUMNS) for s in ("val", "test")})
        if track_collapse:
            self.nc = nn.ModuleDict(
                {
                    f"{stage}_{kind}": LayerwiseCollapse(n_classes, width, depth + 1)
                    for stage in ("val", "test")
                    for kind in NC_KINDS
                }
            )
            # Training graphs: last layer only, pooled sufficient statistics (a few adds per
            # step, so tracking costs ~nothing next to the step), NC1/ÑC1/NC2.
            self.nc_train = CollapseMetric(n_classes, width)

    @classmethod
    def conv_size(cls, hp: Mapping[str, Any], d_in: int, d_out: int) -> tuple[int, int]:
        """(parameters, modules) of one :meth:`make_conv` ``d_in → d_out``, without building it."""
        raise NotImplementedError

    @classmethod
    def footprint(cls, hp: Mapping[str, Any], data: Mapping[str, Any]) -> Footprint:
        """Weights, modules and one training batch of ``data`` (SBM graphs), analytically.

        Per layer and node ~6 float32 activations of width d are kept for the backward pass;
        the sparse Â and Âᵀ cost 12 bytes per directed edge each, the permutation-invariant
        loss 3 floats per node and permutation; gradients and optimiser moments 3 floats per
        parameter; the pooled training NC statistics (C + Cd + d²) float64. (The per-graph
        evaluation columns grow with the evaluated graphs: a few kB per graph.)
        """
        f, c, d, depth = hp["feature_dim"], hp["n_classes"], hp["width"], hp["depth"]
        conv_p, conv_m = cls.conv_size(hp, d, d)
        last_p, last_m = cls.conv_size(hp, d, c)
        norm_p = 2 * d if hp["norm"] != "none" else 0
        params = f * d + depth * (conv_p + norm_p) + last_p
        # self, proj, 2 lists (Identity norms count), graph columns (ModuleDict + 2 Columns)
        modules = 4 + depth * (conv_m + 1) + last_m + 3
        stats = 0
        if hp["track_collapse"]:
            modules += 2 + 4  # ModuleDict, nc_train, 4 LayerwiseCollapse
            stats = (c + c * d + d * d) * 8
        nodes = data.get("n_nodes", 0) * data.get("batch_size", 1)
        edges = SBMDataModule.expected_edges(data) * data.get("batch_size", 1) if nodes else 0
        act = 4 * nodes * (f + 6 * d * (depth + 1)) + 2 * 2 * edges * 12
        act += 12 * nodes * math.factorial(c) + 12 * params + stats
        return Footprint(params=params, modules=modules, other=act)

    @staticmethod
    def _make_norm(norm: str, width: int) -> nn.Module:
        if norm == "batch":
            # Statistics of the current batch also in eval mode: each SBM graph is a fresh
            # instance whose deep features have their own scale, and running averages over
            # graphs break the 32-layer network (measured: test overlap 0.34 with running
            # stats vs 0.998 with batch stats on the same weights, docs/graphs.md).
            return nn.BatchNorm1d(width, track_running_stats=False)
        if norm == "instance":
            return InstanceNorm(width, affine=True)
        return nn.Identity()

    # -- to implement ------------------------------------------------------------------
    def make_conv(self, d_in: int, d_out: int) -> nn.Module:
        """One graph convolution ``d_in → d_out`` without bias."""
        raise NotImplementedError

    aggregation: Literal["mean", "gcn"] = "mean"

    def graph_context(self, edge_index: Tensor, num_nodes: int) -> dict[str, Tensor]:
        """Per-forward graph tensors shared by all layers: ``Â`` and ``Âᵀ`` (CSR)."""
        a, a_t = propagation_matrix(edge_index, num_nodes, self.aggregation)
        return {"a": a, "a_t": a_t}

    def conv(self, layer: nn.Module, h: Tensor, ctx: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """``(conv(h), Â h)`` for features ``h: (N, d_in)``."""
        raise NotImplementedError

    def classifier_weights(self) -> dict[str, Tensor | None]:
        """The (C, d) weight of the final conv reading ``Hᴸ`` (``"h"``) and ``ÂHᴸ`` (``"ah"``)."""
        raise NotImplementedError

    # -- forward -----------------------------------------------------------------------
    def forward(
        self, data: Data | Batch, return_features: bool = False
    ) -> Tensor | tuple[Tensor, dict[str, list[Tensor]]]:
        """Logits of every node.

        Args:
            data: a PyG ``Data``/``Batch`` with ``x: (N, F)``, ``edge_index: (2, E)`` and
                (for batches) ``batch: (N,)``.
            return_features: also return ``{"h": [H⁰ … Hᴸ], "ah": [ÂH⁰ … ÂHᴸ]}``, each
                (N, d).

        Returns:
            ``logits: (N, C)`` (and the feature dict).
        """
        x, edge_index = data.x, data.edge_index
        hp = self.hparams
        if x.dim() != 2 or x.shape[1] != hp.feature_dim:
            raise ValueError(
                f"node features have shape {tuple(x.shape)} but the model expects "
                f"(N, feature_dim={hp.feature_dim}); set data.feature_dim and "
                "model.feature_dim alike"
            )
        batch = getattr(data, "batch", None)
        ctx = self.graph_context(edge_index, x.shape[0])
        h = self.proj(x)
        hs, ahs = [h], []
        for conv, norm in zip(self.convs[:-1], self.norms):
            z, ah = self.conv(conv, h, ctx)
            z = torch.relu(z)
            h = norm(z, batch) if isinstance(norm, InstanceNorm) else norm(z)
            hs.append(h)
            ahs.append(ah)
        logits, ah = self.conv(self.convs[-1], h, ctx)
        ahs.append(ah)
        if return_features:
            return logits, {"h": hs, "ah": ahs}
        return logits

    # -- training ----------------------------------------------------------------------
    def _step(self, data: Batch, stage: str) -> Tensor:
        c = self.hparams.n_classes
        y = data.y
        if int(y.max()) >= c:
            raise ValueError(f"labels reach {int(y.max())} but the model has n_classes={c}")
        batch = getattr(data, "batch", None)
        g = int(data.num_graphs) if hasattr(data, "num_graphs") else 1
        track = self.hparams.track_collapse
        logits, feats = self(data, return_features=True)
        losses = permutation_invariant_mse(logits, y, batch, g, reduction="none")  # (G,)
        loss = losses.mean()
        pred = logits.argmax(1)
        perm, correct = best_permutation(pred, y, c, batch)  # (G, C), (G,)
        n_g = torch.bincount(batch, minlength=g) if batch is not None else y.new_tensor([len(y)])
        accs = correct.float() / n_g.clamp_min(1)  # (G,) permutation-maximised accuracy
        acc = accs.mean()
        if stage == "train":  # epoch means over graphs; the step loss on logging steps
            self.log_train("loss", loss, weight=g, live=True)
            self.log_train("acc", acc, weight=g)
            self.log_train("overlap", (acc - 1.0 / c) / (1.0 - 1.0 / c), weight=g)
        else:
            overlaps = (accs - 1.0 / c) / (1.0 - 1.0 / c)  # = collapse.overlap per graph
            self.graph_columns[stage].update(loss=losses, overlap=overlaps, acc=accs)
        if track:
            aligned = perm[batch, y] if batch is not None else perm[0, y]  # align_labels
            w = self.classifier_weights()
            if stage == "train":
                self.nc_train.update(feats["h"][-1].detach(), aligned, batch)
            else:
                for kind in NC_KINDS:
                    fs = [f.detach() for f in feats[kind]]
                    self.nc[f"{stage}_{kind}"].update(fs, aligned, batch, w[kind])
        return loss

    def training_step(self, data: Batch, batch_idx: int) -> Tensor:
        return self._step(data, "train")

    def eval_step(self, stage: str, data: Batch) -> None:
        self._step(data, stage)

    def eval_epoch_end(self, stage: str) -> None:
        """Log the epoch's estimates over graphs: loss, overlap, acc and the per-layer NC
        summaries (columns gathered across processes; intervals on the test stage)."""
        graph_columns = self.graph_columns[stage]
        if graph_columns.n == 0:
            return
        columns: dict[str, Tensor] = dict(graph_columns.compute())
        statistics: dict[str, Statistic] = {k: mean(k) for k in GRAPH_COLUMNS}
        graph_columns.reset()
        if self.hparams.track_collapse:
            for kind in NC_KINDS:
                metric = self.nc[f"{stage}_{kind}"]
                for key, values in metric.compute().items():  # "layer_07/nc1": (G,)
                    column = f"nc_{kind}/{key}"
                    columns[column] = values
                    statistics.update(nc_statistics(column, key.split("/")[1]))
                metric.reset()
                level = self.hparams.nc1_depth_level
                if level is not None:
                    layers = [f"nc_{kind}/layer_{ell:02d}/nc1" for ell in range(len(metric))]
                    statistics[f"nc1_depth_{kind}"] = crossing_depth(layers, level)
        self.log_estimates(stage, columns, statistics, prog_bar="overlap")

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        if self.hparams.track_collapse:
            vals = self.nc_train.compute()
            self.log_dict({nc_log_key("train", "h", "last", k): v.float() for k, v in vals.items()})
            self.nc_train.reset()

    def configure_callbacks(self) -> list[pl.Callback]:
        """NC1 vs layer and vs epoch plots (PNG in the run dir, W&B image when logged)."""
        if not self.hparams.track_collapse:
            return []
        from zoo.graphs.callbacks import CollapsePlotCallback

        return [CollapsePlotCallback("nc1")]

    def _depth_card(self, metrics: Mapping[str, Any]) -> list[str]:
        """Markdown on the depth at which the mean log₁₀ NC1 first falls below the level."""
        level = self.hparams.nc1_depth_level
        if level is None:
            return []
        lines = [f"### Depth at which the mean over graphs of log₁₀ NC1 falls below {level:g}", ""]
        for kind, label in (("h", "Hˡ"), ("ah", "ÂHˡ")):
            key = f"test/nc1_depth_{kind}"
            if key not in metrics:
                continue
            highs = [
                metrics.get(f"{nc_log_key('test', kind, ell, 'nc1')}_log10_mean_ci", [0, 0])[1]
                for ell in range(self.hparams.depth + 1)
            ]
            first = next((ell for ell, hi in enumerate(highs) if hi < level), None)
            where = (
                f"the first layer whose 95 % interval lies wholly below {level:g} is ℓ = {first}"
                if first is not None
                else f"no layer's 95 % interval lies wholly below {level:g}"
            )
            lines.append(
                f"- {label}: crossing depth `{key}` = {format_metric(metrics, key)} (first "
                f"crossing, interpolated between layers); {where}."
            )
        return [*lines, ""]

    def model_card_extra(self, metrics: dict[str, Any]) -> str:
        """Markdown tables of the test NC summaries per layer, each "value [lo, hi], n = G"."""
        layers = range(self.hparams.depth + 1)
        parts = []
        for kind, title in (("h", "layer features Hˡ"), ("ah", "aggregated features ÂHˡ")):
            for name, label in (("nc1", "NC1"), ("nc1_tilde", "ÑC1")):
                parts += summary_table(
                    f"{label} of the {title} (test graphs)",
                    ["layer ℓ", *(head for _, head in LOG_SUMMARY_COLUMNS)],
                    {
                        ell: [
                            f"{nc_log_key('test', kind, ell, name)}_{s}"
                            for s, _ in LOG_SUMMARY_COLUMNS
                        ]
                        for ell in layers
                    },
                    metrics,
                )
            if self.hparams.n_classes > 2:  # for C = 2 (balanced) NC2 is 0 up to rounding
                parts += summary_table(
                    f"NC2 of the {title} (test graphs)",
                    ["layer ℓ", "mean over graphs"],
                    {ell: [nc_log_key("test", kind, ell, "nc2")] for ell in layers},
                    metrics,
                )
        last = self.hparams.depth
        parts += summary_table(
            f"NC3 and NC4 at the last layer ℓ = {last} (test graphs, mean over graphs)",
            ["features", "NC3", "NC4"],
            {
                label: [nc_log_key("test", kind, last, n) for n in ("nc3", "nc4")]
                for kind, label in (("h", "Hᴸ"), ("ah", "ÂHᴸ"))
            },
            metrics,
        )
        parts = self._depth_card(metrics) + parts
        if not parts:
            return ""
        head = [
            "## Neural collapse per layer",
            "",
            "NC1 = Tr(Σ_W Σ_B^†)/C, ÑC1 = Tr(Σ_W)/Tr(Σ_B), NC2 = distance of the class-mean "
            "Gram matrix to the simplex ETF, NC3 = classifier/class-mean misalignment, NC4 = "
            "disagreement with the nearest-class-centre rule (see `zoo.graphs.collapse`), each "
            "computed per test graph. Layer 0 is the projection; NC3/NC4 use the final conv's "
            "weight on those features. NC1 and ÑC1 are heavy tailed over graphs, so they are "
            "summarised by the mean and standard deviation over graphs of log₁₀ and by the "
            "median; the bounded NC2–NC4 by their mean over graphs. Every cell is "
            "value [95 % bootstrap interval over graphs], n = graphs."
            + (
                " For C = 2 balanced communities NC2 is 0 up to rounding (two centred class "
                "means of equal size are antipodal): its values are in `config.json` only."
                if self.hparams.n_classes == 2
                else ""
            ),
            "",
        ]
        return "\n".join(head + parts)


# Shared by gnn_nc and gcn_nc: the paper's SGD settings, and default data small
# enough for the quick-start run (experiment=<name> holds the paper-scale data).
PAPER_OPTIMIZER = {"optimizer": "sgd", "lr": 4e-3, "momentum": 0.9, "weight_decay": 5e-4}
QUICK_DATA = {"n_train": 32, "n_val": 4, "n_test": 8, "batch_size": 1}
#: The paper's public code draws A_ij and A_ji independently and symmetrises with a max, so a
#: pair is an edge with probability 1 − (1 − p)² = 2p − p²: its graphs are those of our SBM at
#: these effective densities (p = 0.025 → 0.049375, q = 0.0017 → 0.00339711).
PAPER_DENSITY = {"p": 0.049375, "q": 0.00339711}  # exact decimals of 1 − (1 − p)²
#: the variants report the depth at which the mean log₁₀ NC1 first falls below −1
DEPTH = {"nc1_depth_level": -1.0}
NO_SELF = {**PAPER_OPTIMIZER, **DEPTH, "self_weight": False}


@register_model(
    "gnn_nc_c4",
    data="sbm",
    defaults={
        **PAPER_OPTIMIZER,
        **DEPTH,
        "lr": 6e-3,
        "n_classes": 4,
        "feature_dim": 16,
        "width": 16,
    },
    data_defaults={**QUICK_DATA, "p": 0.1, "q": 0.0068},
    shared=("n_classes", "feature_dim"),
    description="gnn_nc for C = 4 communities (p = 0.1, q = 0.0068, width 16, SGD lr 0.006).",
    paper=PAPER,
)
@register_model(
    "gnn_nc_paper_noself",
    data="sbm",
    defaults=NO_SELF,
    data_defaults={**QUICK_DATA, **PAPER_DENSITY},
    shared=("n_classes", "feature_dim"),
    description="gnn_nc_noself on graphs of the paper code's effective density 1 − (1 − p)².",
    paper=PAPER,
)
@register_model(
    "gnn_nc_paper",
    data="sbm",
    defaults={**PAPER_OPTIMIZER, **DEPTH},
    data_defaults={**QUICK_DATA, **PAPER_DENSITY},
    shared=("n_classes", "feature_dim"),
    description="gnn_nc on graphs of the paper code's effective density 1 − (1 − p)².",
    paper=PAPER,
)
@register_model(
    "gnn_nc_noself",
    data="sbm",
    defaults=NO_SELF,
    data_defaults=QUICK_DATA,
    shared=("n_classes", "feature_dim"),
    description="gnn_nc without the self weight W₁: Hˡ⁺¹ = norm(ReLU(ÂHˡ W₂)).",
    paper=PAPER,
)
@register_model(
    "gnn_nc",
    data="sbm",
    defaults=PAPER_OPTIMIZER,
    data_defaults=QUICK_DATA,
    shared=("n_classes", "feature_dim"),
    paper=PAPER,
)
class MeanGNN(GNNCollapse):
    """Deep GNN Hˡ⁺¹ = norm(ReLU(Hˡ W₁ + ÂHˡ W₂)), Â the mean aggregation, on SBM graphs.

    Each conv is PyG's ``SAGEConv(aggr="mean", root_weight=self_weight, bias=False)``,
    which computes exactly ``h_i W₁ + mean_{j∈N(i)} h_j W₂`` (``lin_r`` = W₁, ``lin_l`` = W₂).

    Args:
        self_weight: include the self term ``Hˡ W₁`` (the paper's two variants).
        **kwargs: see :class:`GNNCollapse`.
    """

    def __init__(self, self_weight: bool = True, **kwargs: Any) -> None:
        self._self_weight = self_weight
        super().__init__(**kwargs)

    def make_conv(self, d_in: int, d_out: int) -> nn.Module:
        return SAGEConv(d_in, d_out, aggr="mean", root_weight=self._self_weight, bias=False)

    @classmethod
    def conv_size(cls, hp: Mapping[str, Any], d_in: int, d_out: int) -> tuple[int, int]:
        """``SAGEConv``: W₂ (and W₁), modules conv, aggregation, lin_l (and lin_r)."""
        root = hp["self_weight"]
        return d_in * d_out * (1 + root), 3 + root

    def conv(self, layer: nn.Module, h: Tensor, ctx: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        # SAGEConv.forward, split to expose Â h; the mean aggregation runs as one CSR
        # matmul per layer (propagate's scatter-mean is ~4x slower on CPU; same values).
        ah = aggregate(ctx, h)
        out = layer.lin_l(ah)
        if layer.root_weight:
            out = out + layer.lin_r(h)
        return out, ah

    def classifier_weights(self) -> dict[str, Tensor | None]:
        last = self.convs[-1]
        return {"h": last.lin_r.weight if last.root_weight else None, "ah": last.lin_l.weight}


@register_model(
    "gcn_nc",
    data="sbm",
    defaults=PAPER_OPTIMIZER,
    data_defaults=QUICK_DATA,
    shared=("n_classes", "feature_dim"),
    paper=PAPER,
)
class GCNCollapse(GNNCollapse):
    """Deep GCN Hˡ⁺¹ = norm(ReLU(Â Hˡ W)), Â = D̃^{-1/2}(A+I)D̃^{-1/2}, on SBM graphs.

    Each conv holds the weight of a PyG ``GCNConv(bias=False)``; ``Â`` (``gcn_norm`` with
    self-loops) is built once per forward as a CSR matrix instead of once per layer, and the
    conv is evaluated as ``(Â h) W`` (= ``Â (h W)``, PyG's order) to expose ``Â h``.
    """

    aggregation = "gcn"

    def make_conv(self, d_in: int, d_out: int) -> nn.Module:
        return GCNConv(d_in, d_out, bias=False, normalize=False)

    @classmethod
    def conv_size(cls, hp: Mapping[str, Any], d_in: int, d_out: int) -> tuple[int, int]:
        """``GCNConv``: W, modules conv, aggregation, lin."""
        return d_in * d_out, 3

    def conv(self, layer: nn.Module, h: Tensor, ctx: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        ah = aggregate(ctx, h)
        return layer.lin(ah), ah

    def classifier_weights(self) -> dict[str, Tensor | None]:
        return {"h": None, "ah": self.convs[-1].lin.weight}
