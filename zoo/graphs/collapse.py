"""Neural-collapse metrics NC1–NC4, functional and streaming (torchmetrics), per layer.

Notation (Papyan, Han & Donoho 2020; Kothapalli, Tirer & Bruna 2023). Features
``h_i ∈ R^F`` of ``N`` nodes with labels ``y_i ∈ {0..C-1}``, ``n_c`` nodes in class ``c``::

    μ_c = (1/n_c) Σ_{i: y_i=c} h_i                 class means
    μ_G = (1/N) Σ_i h_i                            global mean
    Σ_W = (1/N) Σ_i (h_i − μ_{y_i})(h_i − μ_{y_i})ᵀ    within-class covariance
    Σ_B = (1/C) Σ_c (μ_c − μ_G)(μ_c − μ_G)ᵀ           between-class covariance
    M   = [μ_c − μ_G]_c  ∈ R^{C×F}                   centred class means

    NC1  = Tr(Σ_W Σ_B^†) / C
    ÑC1  = Tr(Σ_W) / Tr(Σ_B)
    NC2  = ‖ M Mᵀ/‖M Mᵀ‖_F − (I_C − 1 1ᵀ/C)/√(C−1) ‖_F     (0 iff the means form a simplex ETF)
    NC3  = ‖ W/‖W‖_F − M/‖M‖_F ‖_F                         (classifier W ∈ R^{C×F})
    NC4  = (1/N) #{i : argmax_c (W h_i + b)_c ≠ argmin_c ‖h_i − μ_c‖}

All four vanish under exact neural collapse (NC4 is the *disagreement* rate of the
classifier with the nearest-class-centre rule, 1 − agreement). Classes absent from a group
are left out of Σ_B, NC2 and NC3 (their ``μ_c − μ_G`` is set to 0). ``Σ_B^†`` is the
Hermitian pseudo-inverse with relative cut-off ``pinv_rtol`` (default 1e-6), computed in
float64.

Graphs. Each SBM graph has its own communities and, because the node features of the
reference setup carry no label information, a GNN can only identify them up to a label
permutation that may differ from graph to graph. Statistics are therefore computed *per
graph* (``batch`` vector as in PyG), and when a classifier is given the labels of each
graph can first be aligned (:func:`align_labels`) to the permutation that best matches the
classifier's predictions (the one the "overlap" accuracy uses), so that NC3/NC4 compare the
right rows of ``W`` with the right class means.

Streaming, exact under DDP:

- :class:`LayerwiseCollapse`: each graph's NC values at every layer, one row per graph
  (torchmetrics ``cat`` states, gathered across processes); a graph's statistics come from
  its own nodes inside one ``update``, all layers in one batched pass.
- :class:`CollapseMetric` (pooled, one layer): per-class counts ``n_c``, per-class sums
  ``Σ_i h_i`` and the total second moment ``Σ_i h_i h_iᵀ`` (sufficient for Σ_W, since
  ``N Σ_W = Σ_i h_i h_iᵀ − Σ_c n_c μ_c μ_cᵀ``), accumulated in float64 and summed across
  processes; ``compute()`` gives the NC values of all nodes pooled.

NC4 needs the class means before any node can be classified by the nearest-centre rule, so
a single pass cannot be exact when pooling. It is streamed *per group*: each graph's nodes
are compared with that graph's own class means (or, without a ``batch`` vector, the nodes
of one ``update`` call with that call's class means), and mismatches and node counts are
summed. Per graph this is exact; pooled, it equals the one-shot value when everything is
passed in one ``update``.

Summaries over graphs (:func:`nc_statistics`). NC1 and ÑC1 are ratios whose denominator
(Σ_B) is near-singular on a graph whose communities the features do not yet separate, so
over graphs they are heavy tailed (at a middle layer of the shipped ``gnn_nc`` they spread
over three decades) and their arithmetic mean is set by the few worst graphs: it does not
reproduce on fresh graphs. They are summarised by the mean and standard deviation over
graphs of log₁₀ (the statistic Kothapalli et al. plot) and the median. NC2, NC3 (both in
[0, 2]) and NC4 (in [0, 1]) are bounded and often exactly 0 on a graph (NC2 for C = 2
balanced communities is 0 up to rounding; NC4 counts rare disagreements), so their log is
undefined and their mean over graphs is the summary.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from zoo.core.evaluation import Statistic, format_metric, log10_summary, mean

__all__ = [
    "LOG_SCALE_KEYS",
    "LOG_SUMMARY_COLUMNS",
    "NC_KEYS",
    "CollapseMetric",
    "LayerwiseCollapse",
    "align_labels",
    "best_permutation",
    "class_statistics",
    "crossing_depth",
    "nc_from_statistics",
    "nc_metrics",
    "nc_statistics",
    "overlap",
    "summary_table",
]

NC_KEYS = ("nc1", "nc1_tilde", "nc2", "nc3", "nc4")
#: heavy-tailed NC values, summarised over graphs on a log scale (see the module docstring)
LOG_SCALE_KEYS = ("nc1", "nc1_tilde")
#: the key suffixes of those summaries (:func:`nc_statistics`) and their table headings
LOG_SUMMARY_COLUMNS = (
    ("log10_mean", "mean of log₁₀"),
    ("log10_std", "std of log₁₀"),
    ("median", "median"),
)
_MAX_PERM_CLASSES = 8  # C! label permutations are enumerated (40 320 at C = 8)


def _check(features: Tensor, labels: Tensor, num_classes: int, stacked: bool = False) -> None:
    if features.dim() != 2 + stacked:
        want = "(L, N, F)" if stacked else "(N, F)"
        raise ValueError(f"features must be {want}, got shape {tuple(features.shape)}")
    if labels.shape != features.shape[-2:-1]:
        raise ValueError(
            f"labels must be (N,) with N={features.shape[-2]}, got shape {tuple(labels.shape)}"
        )
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes - 1}]")


def _check_sizes(num_classes: int, num_features: int) -> None:
    if num_classes < 2 or num_features < 1:
        raise ValueError(
            f"need num_classes >= 2 and num_features >= 1, got {num_classes}, {num_features}"
        )


def _groups(batch: Tensor | None, n: int, device: torch.device) -> tuple[Tensor, int]:
    if batch is None:
        return torch.zeros(n, dtype=torch.long, device=device), 1
    if batch.shape != (n,):
        raise ValueError(f"batch must be (N,) with N={n}, got shape {tuple(batch.shape)}")
    return batch.long(), int(batch.max()) + 1 if n else 0


# -- label permutations / overlap ---------------------------------------------------------
def _permutations(num_classes: int, device: torch.device) -> Tensor:
    if num_classes > _MAX_PERM_CLASSES:
        raise ValueError(
            f"label permutations are enumerated (C!); num_classes={num_classes} > "
            f"{_MAX_PERM_CLASSES} is not supported"
        )
    return torch.tensor(
        list(itertools.permutations(range(num_classes))), dtype=torch.long, device=device
    )


def best_permutation(
    pred: Tensor, labels: Tensor, num_classes: int, batch: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Per graph, the label permutation π maximising #{i : π(y_i) = pred_i}.

    Args:
        pred: (N,) predicted classes.
        labels: (N,) true classes.
        num_classes: C (all C! permutations are enumerated; C ≤ 8).
        batch: (N,) graph index of each node (PyG), or ``None`` for a single graph.

    Returns:
        ``(perm, correct)``: perm (G, C) with ``perm[g, c]`` the predicted class that true
        class ``c`` is mapped to, and correct (G,) the number of matches under it.
    """
    group, g = _groups(batch, labels.numel(), labels.device)
    conf = torch.zeros(g * num_classes * num_classes, dtype=torch.long, device=labels.device)
    conf.index_add_(
        0,
        (group * num_classes + labels.long()) * num_classes + pred.long(),
        torch.ones_like(labels, dtype=torch.long),
    )
    conf = conf.view(g, num_classes, num_classes)  # conf[g, true, pred]
    perms = _permutations(num_classes, labels.device)  # (P, C)
    cls = torch.arange(num_classes, device=labels.device)
    score = conf[:, cls, perms].sum(-1)  # (G, P)
    correct, best = score.max(-1)
    return perms[best], correct


def align_labels(
    pred: Tensor, labels: Tensor, num_classes: int, batch: Tensor | None = None
) -> Tensor:
    """Relabel each graph's true labels by its :func:`best_permutation`: (N,) → (N,)."""
    perm, _ = best_permutation(pred, labels, num_classes, batch)
    group, _ = _groups(batch, labels.numel(), labels.device)
    return perm[group, labels.long()]


def overlap(pred: Tensor, labels: Tensor, num_classes: int, batch: Tensor | None = None) -> Tensor:
    """Permutation-maximised overlap per graph: (acc − 1/C)/(1 − 1/C), shape (G,).

    ``acc = max_π (1/N_g) Σ_i [π(y_i) = pred_i]``; 1 for perfect recovery, ≈ 0 for chance
    (slightly positive on finite graphs, since the max over π picks the luckiest labelling).
    """
    _, correct = best_permutation(pred, labels, num_classes, batch)
    group, g = _groups(batch, labels.numel(), labels.device)
    n = torch.zeros(g, device=labels.device).index_add_(
        0, group, torch.ones_like(labels, dtype=torch.float)
    )
    acc = correct.float() / n.clamp_min(1)
    return (acc - 1.0 / num_classes) / (1.0 - 1.0 / num_classes)


# -- sufficient statistics -------------------------------------------------------------
def class_statistics(
    features: Tensor, labels: Tensor, num_classes: int, batch: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-graph sufficient statistics, float64, of one feature matrix or a stack of them.

    Args:
        features: (N, F), or (L, N, F): L feature matrices of the same nodes (the layers
            of a network), computed in one pass.
        labels: (N,) in ``[0, C)``.
        num_classes: C.
        batch: (N,) graph index (need not be sorted), or ``None`` (one group).

    Returns:
        ``counts`` (G, C) = n_c, ``sums`` ([L,] G, C, F) = Σ_{y_i=c} h_i and ``second``
        ([L,] G, F, F) = Σ_i h_i h_iᵀ.
    """
    stacked = features.dim() == 3
    _check(features, labels, num_classes, stacked)
    h = features.detach().double()
    if not stacked:
        h = h.unsqueeze(0)
    layers, n, f = h.shape
    group, g = _groups(batch, n, features.device)
    idx = group * num_classes + labels.long()
    counts = torch.zeros(g * num_classes, dtype=torch.float64, device=h.device)
    counts.index_add_(0, idx, torch.ones(n, dtype=torch.float64, device=h.device))
    rows = h.transpose(0, 1).reshape(n, layers * f)  # (N, L·F): one index_add for all layers
    sums = torch.zeros(g * num_classes, layers * f, dtype=torch.float64, device=h.device)
    sums.index_add_(0, idx, rows)
    sums = sums.view(g, num_classes, layers, f).permute(2, 0, 1, 3)  # (L, G, C, F)
    if g == 1:
        second = (h.transpose(1, 2) @ h).unsqueeze(1)  # (L, 1, F, F)
    else:  # pad graphs to (G, N_max, L·F) and use one batched matmul: O(N F²), no (N, F, F)
        from torch_geometric.utils import to_dense_batch

        order = torch.argsort(group, stable=True)
        dense, _ = to_dense_batch(rows[order], group[order], batch_size=g)
        dense = dense.view(g, -1, layers, f).permute(2, 0, 1, 3)  # (L, G, N_max, F)
        second = dense.transpose(-1, -2) @ dense
    counts = counts.view(g, num_classes)
    if not stacked:
        return counts, sums[0], second[0]
    return counts, sums, second


def nc_from_statistics(
    counts: Tensor,
    sums: Tensor,
    second: Tensor,
    classifier_weight: Tensor | None = None,
    *,
    pinv_rtol: float = 1e-6,
) -> dict[str, Tensor]:
    """NC1, ÑC1, NC2 (and NC3 with a classifier) from sufficient statistics.

    Args:
        counts: (..., C), sums: (..., C, F), second: (..., F, F) as in
            :func:`class_statistics` (leading dims are batch dims, e.g. layers and graphs;
            ``counts`` broadcasts against them).
        classifier_weight: (C, F) or ``None``.
        pinv_rtol: relative cut-off of the pseudo-inverse of Σ_B.

    Returns:
        ``{"nc1", "nc1_tilde", "nc2"[, "nc3"]}``, each of the leading shape, float64.
    """
    sums, second = sums.double(), second.double()
    counts = counts.double().expand(sums.shape[:-1])
    c = counts.shape[-1]
    n = counts.sum(-1)  # (...)
    present = counts > 0
    mu = sums / counts.clamp_min(1).unsqueeze(-1)  # (..., C, F)
    mu_g = sums.sum(-2) / n.clamp_min(1).unsqueeze(-1)  # (..., F)
    m = (mu - mu_g.unsqueeze(-2)) * present.unsqueeze(-1)  # (..., C, F) centred means
    within = second - torch.einsum("...c,...cf,...ch->...fh", counts, mu, mu)
    sigma_w = within / n.clamp_min(1)[..., None, None]
    sigma_b = m.transpose(-1, -2) @ m / c
    pinv_b = torch.linalg.pinv(sigma_b, rtol=pinv_rtol, hermitian=True)
    out = {
        "nc1": (sigma_w * pinv_b).sum((-1, -2)) / c,  # Tr(A B) = Σ A ∘ Bᵀ, B symmetric
        "nc1_tilde": sigma_w.diagonal(dim1=-2, dim2=-1).sum(-1)
        / sigma_b.diagonal(dim1=-2, dim2=-1).sum(-1),
    }
    gram = m @ m.transpose(-1, -2)
    etf = torch.eye(c, dtype=gram.dtype, device=gram.device) - 1.0 / c
    etf = etf / math.sqrt(c - 1)
    gram_n = gram / torch.linalg.matrix_norm(gram).clamp_min(1e-300)[..., None, None]
    out["nc2"] = torch.linalg.matrix_norm(gram_n - etf)
    if classifier_weight is not None:
        w = classifier_weight.detach().double()
        if w.shape != m.shape[-2:]:
            raise ValueError(f"classifier_weight must be (C, F)={tuple(m.shape[-2:])}")
        w = w / torch.linalg.matrix_norm(w).clamp_min(1e-300)
        m_n = m / torch.linalg.matrix_norm(m).clamp_min(1e-300)[..., None, None]
        out["nc3"] = torch.linalg.matrix_norm(w - m_n)
    return out


def _ncc_mismatch(
    features: Tensor,
    group: Tensor,
    num_groups: int,
    sums: Tensor,
    counts: Tensor,
    weight: Tensor,
    bias: Tensor | None,
) -> Tensor:
    """Per group, #{i: argmax(W h_i + b) ≠ argmin_c ‖h_i − μ_{g(i),c}‖}: (G,) float64."""
    h = features.detach().double()
    logits = h @ weight.detach().double().T
    if bias is not None:
        logits = logits + bias.detach().double()
    mu = sums / counts.clamp_min(1).unsqueeze(-1)  # (G, C, F)
    dist = (h.unsqueeze(1) - mu[group]).pow(2).sum(-1)  # (N, C)
    dist = dist.masked_fill(~(counts > 0)[group], float("inf"))
    wrong = (logits.argmax(-1) != dist.argmin(-1)).double()
    return torch.zeros(num_groups, dtype=torch.float64, device=h.device).index_add_(0, group, wrong)


def nc_metrics(
    features: Tensor,
    labels: Tensor,
    classifier_weight: Tensor | None = None,
    *,
    classifier_bias: Tensor | None = None,
    num_classes: int | None = None,
    align: bool = False,
    pinv_rtol: float = 1e-6,
) -> dict[str, float]:
    """NC1–NC4 of one set of features (one graph, or nodes pooled over graphs).

    Args:
        features: (N, F).
        labels: (N,) integer classes.
        classifier_weight: (C, F) last-layer weight ``W`` (logits ``W h + b``); enables
            ``nc3`` and ``nc4``.
        classifier_bias: (C,) optional bias ``b`` used by NC4.
        num_classes: C (default ``labels.max() + 1``).
        align: relabel by the permutation that best matches the classifier's predictions
            before computing (needs a classifier; see the module docstring).
        pinv_rtol: relative cut-off of the pseudo-inverse of Σ_B.

    Returns:
        ``{"nc1", "nc1_tilde", "nc2"}`` plus ``"nc3", "nc4"`` with a classifier, as floats.
    """
    c = int(labels.max()) + 1 if num_classes is None else num_classes
    if align:
        if classifier_weight is None:
            raise ValueError("align=True needs a classifier_weight")
        logits = features.detach() @ classifier_weight.detach().T.to(features.dtype)
        if classifier_bias is not None:
            logits = logits + classifier_bias.detach().to(features.dtype)
        labels = align_labels(logits.argmax(-1), labels, c)
    counts, sums, second = class_statistics(features, labels, c)
    out = nc_from_statistics(counts, sums, second, classifier_weight, pinv_rtol=pinv_rtol)
    res = {k: float(v[0]) for k, v in out.items()}
    if classifier_weight is not None:
        zero = torch.zeros(labels.numel(), dtype=torch.long, device=labels.device)
        wrong = _ncc_mismatch(features, zero, 1, sums, counts, classifier_weight, classifier_bias)
        res["nc4"] = float(wrong[0]) / max(labels.numel(), 1)
    return res


def nc_statistics(column: str, key: str) -> dict[str, Statistic]:
    """How per-graph values of the NC value ``key`` in ``column`` are summarised over graphs,
    as ``{logged name: Statistic}`` (see :mod:`zoo.core.evaluation`).

    ``nc1``, ``nc1_tilde`` (:data:`LOG_SCALE_KEYS`): ``{column}_log10_mean``,
    ``{column}_log10_std`` (mean and standard deviation over graphs of log₁₀) and
    ``{column}_median``; ``nc2``, ``nc3``, ``nc4`` (bounded): ``{column}``, the mean over graphs.
    """
    if key in LOG_SCALE_KEYS:
        summaries = log10_summary(column)
        return {f"{column}_{suffix}": summaries[suffix] for suffix, _ in LOG_SUMMARY_COLUMNS}
    return {column: mean(column)}


def crossing_depth(columns: Sequence[str], level: float) -> Statistic:
    """The depth at which the mean over graphs of log₁₀ of the per-layer ``columns`` first
    falls below ``level``, as a :data:`~zoo.core.evaluation.Statistic`.

    ``columns[ℓ]`` holds each graph's value at layer ℓ (ℓ = 0 … L). With ``m_ℓ`` the mean over
    graphs of log₁₀ at layer ℓ and ``k`` the first layer with ``m_k < level``, the statistic is
    ``k`` linearly interpolated between layers: ``(k − 1) + (m_{k−1} − level)/(m_{k−1} − m_k)``
    (0 when ``m_0 < level``; censored at ``L + 1``, one past the last layer, when no layer
    gets below). The interpolation makes it continuous in the per-graph values, so its
    bootstrap interval over graphs is not stuck on integers.
    """
    tiny = torch.finfo(torch.float64).tiny

    def f(w: Tensor, c: Mapping[str, Tensor]) -> Tensor:
        logs = torch.stack([c[k].double().clamp_min(tiny).log10() for k in columns], 1)
        m = w @ logs  # (R, L + 1)
        below = m < level
        k = below.double().argmax(1)  # first layer below (0 if none: masked below)
        ki = k.long()
        prev = m.gather(1, (ki - 1).clamp_min(0).unsqueeze(1)).squeeze(1)
        here = m.gather(1, ki.unsqueeze(1)).squeeze(1)
        frac = torch.where(ki > 0, (prev - level) / (prev - here), torch.ones_like(here))
        depth = (k - 1.0 + frac).clamp_min(0.0)
        return torch.where(below.any(1), depth, torch.full_like(depth, float(len(columns))))

    return f


def summary_table(
    title: str,
    heads: Sequence[str],
    rows: Mapping[Any, Sequence[str]],
    metrics: Mapping[str, Any],
) -> list[str]:
    """Markdown lines of a model-card table: ``heads`` (the index column first), one row
    per ``rows`` entry ``index: [metric key per column]``, cells "value [lo, hi], n = N"
    (:func:`zoo.core.evaluation.format_metric`). Rows whose keys are all missing from
    ``metrics`` are left out; no lines at all when every row is."""
    lines = [
        f"| {index} | " + " | ".join(format_metric(metrics, k) for k in keys) + " |"
        for index, keys in rows.items()
        if any(k in metrics for k in keys)
    ]
    if not lines:
        return []
    return [
        f"### {title}",
        "",
        "| " + " | ".join(heads) + " |",
        "|---" * len(heads) + "|",
        *lines,
        "",
    ]


class CollapseMetric(Metric):
    """Streaming NC1–NC4 of one layer's features, all nodes pooled; sums only, so exact
    under DDP.

    ``update(features (N, F), labels (N,), batch=None, classifier_weight=None,
    classifier_bias=None)``; ``compute()`` returns float64 scalars ``{"nc1", "nc1_tilde",
    "nc2"}`` plus ``"nc3", "nc4"`` once a classifier has been passed: NC3 with the classifier
    of the latest update, NC4 the mismatch rate of the nodes of all updates that had one
    (each graph of ``batch`` against its own class means). See the module docstring; for
    per-graph values use :class:`LayerwiseCollapse`.

    Args:
        num_classes: C.
        num_features: F.
        align_labels: when ``update`` gets a classifier, first relabel each graph by the
            permutation that best matches the classifier's predictions (NC1, ÑC1 and NC2
            are invariant to it per graph; NC3/NC4 are not).
        pinv_rtol: relative cut-off of the pseudo-inverse of Σ_B.
    """

    full_state_update = False
    higher_is_better = False
    is_differentiable = False

    def __init__(
        self,
        num_classes: int,
        num_features: int,
        *,
        align_labels: bool = False,
        pinv_rtol: float = 1e-6,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)
        _check_sizes(num_classes, num_features)
        self.num_classes = num_classes
        self.num_features = num_features
        self.align = align_labels
        self.pinv_rtol = pinv_rtol
        f64 = torch.float64
        self.add_state("counts", torch.zeros(num_classes, dtype=f64), dist_reduce_fx="sum")
        self.add_state(
            "sums", torch.zeros(num_classes, num_features, dtype=f64), dist_reduce_fx="sum"
        )
        self.add_state(
            "second", torch.zeros(num_features, num_features, dtype=f64), dist_reduce_fx="sum"
        )
        self.add_state("ncc_mismatch", torch.zeros((), dtype=f64), dist_reduce_fx="sum")
        self.add_state("ncc_total", torch.zeros((), dtype=f64), dist_reduce_fx="sum")
        self._weight: Tensor | None = None

    def update(
        self,
        features: Tensor,
        labels: Tensor,
        batch: Tensor | None = None,
        classifier_weight: Tensor | None = None,
        classifier_bias: Tensor | None = None,
    ) -> None:
        """Accumulate features (N, F) with labels (N,) and graph index ``batch`` (N,)."""
        _check(features, labels, self.num_classes)
        if features.shape[1] != self.num_features:
            raise ValueError(f"expected {self.num_features} features, got {features.shape[1]}")
        group, g = _groups(batch, labels.numel(), labels.device)
        if classifier_weight is not None:
            self._weight = classifier_weight.detach().clone()
        if self.align and classifier_weight is not None:
            logits = features.detach() @ classifier_weight.detach().T.to(features.dtype)
            if classifier_bias is not None:
                logits = logits + classifier_bias.detach().to(features.dtype)
            labels = align_labels(logits.argmax(-1), labels, self.num_classes, batch)
        counts, sums, second = class_statistics(features, labels, self.num_classes, group)
        if classifier_weight is not None:
            wrong = _ncc_mismatch(
                features, group, g, sums, counts, classifier_weight, classifier_bias
            )
            self.ncc_mismatch += wrong.sum()
            self.ncc_total += labels.numel()
        self.counts += counts.sum(0)
        self.sums += sums.sum(0)
        self.second += second.sum(0)

    def reset(self) -> None:
        super().reset()
        self._weight = None

    def compute(self) -> dict[str, Tensor]:
        """``{"nc1", "nc1_tilde", "nc2"[, "nc3", "nc4"]}`` as float64 scalars."""
        out = nc_from_statistics(
            self.counts, self.sums, self.second, self._weight, pinv_rtol=self.pinv_rtol
        )
        if self._weight is not None:
            out["nc4"] = self.ncc_mismatch / self.ncc_total.clamp_min(1)
        return out


class LayerwiseCollapse(Metric):
    """Per-graph NC values of every layer of a network; exact under DDP.

    ``update(features, labels, batch=None, classifier_weight=None, classifier_bias=None)``
    with ``features`` one (N, F) tensor per layer (the same nodes) and ``batch`` (N,) the
    graph of each node: each graph's NC1, ÑC1 and NC2 at every layer, from that graph's own
    nodes, in one batched pass over the layers. A classifier (C, F) belongs to the last layer
    (its features are the classifier's input) and adds that layer's NC3 and NC4 (each
    graph's mismatch rate against its own class means).

    ``compute()`` → ``{"layer_{ℓ:02d}/{key}": (G,) float64}``, the values of the G graphs
    seen so far in update order (torchmetrics ``cat`` states, gathered across processes),
    to be summarised over graphs with :func:`nc_statistics`.

    Args:
        num_classes: C.
        num_features: F of every layer.
        num_layers: L.
        pinv_rtol: relative cut-off of the pseudo-inverse of Σ_B.
    """

    full_state_update = False
    higher_is_better = False
    is_differentiable = False

    def __init__(
        self,
        num_classes: int,
        num_features: int,
        num_layers: int,
        *,
        pinv_rtol: float = 1e-6,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)
        _check_sizes(num_classes, num_features)
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.num_classes = num_classes
        self.num_features = num_features
        self.num_layers = num_layers
        self.pinv_rtol = pinv_rtol
        for key in NC_KEYS:  # (G, L) rows per update; nc3/nc4 (G,) of the last layer
            self.add_state(key, default=[], dist_reduce_fx="cat")

    def __len__(self) -> int:
        return self.num_layers

    def update(
        self,
        features: Sequence[Tensor],
        labels: Tensor,
        batch: Tensor | None = None,
        classifier_weight: Tensor | None = None,
        classifier_bias: Tensor | None = None,
    ) -> None:
        """Accumulate the graphs of one batch: ``features`` L × (N, F), labels (N,)."""
        if len(features) != self.num_layers:
            raise ValueError(f"expected {self.num_layers} feature tensors, got {len(features)}")
        h = torch.stack([f.detach() for f in features])  # (L, N, F)
        if h.shape[-1] != self.num_features:
            raise ValueError(f"expected {self.num_features} features, got {h.shape[-1]}")
        counts, sums, second = class_statistics(h, labels, self.num_classes, batch)
        vals = nc_from_statistics(counts, sums, second, pinv_rtol=self.pinv_rtol)  # (L, G)
        for key in NC_KEYS[:3]:
            getattr(self, key).append(vals[key].T)
        if classifier_weight is None:
            return
        last = nc_from_statistics(
            counts, sums[-1], second[-1], classifier_weight, pinv_rtol=self.pinv_rtol
        )
        group, g = _groups(batch, labels.numel(), labels.device)
        wrong = _ncc_mismatch(
            features[-1], group, g, sums[-1], counts, classifier_weight, classifier_bias
        )
        self.nc3.append(last["nc3"])
        self.nc4.append(wrong / counts.sum(-1).clamp_min(1))

    def compute(self) -> dict[str, Tensor]:
        """``{"layer_{ℓ:02d}/{key}": (G,)}`` for every layer and NC key."""
        out: dict[str, Tensor] = {}
        for key in NC_KEYS:
            parts = getattr(self, key)  # a tensor after the DDP gather
            values = parts if isinstance(parts, Tensor) else torch.cat(parts) if parts else None
            if values is None or not values.numel():
                continue
            if values.dim() == 1:  # nc3, nc4 of the last layer
                out[f"layer_{self.num_layers - 1:02d}/{key}"] = values
            else:
                out.update({f"layer_{i:02d}/{key}": values[:, i] for i in range(self.num_layers)})
        return dict(sorted(out.items()))
