"""The graph unconstrained-features model (gUFM) of Kothapalli, Tirer & Bruna (NeurIPS 2023).

The features of the last layer are free variables, one matrix per training graph, and are
optimised together with the classifier: for K graphs with N nodes, one-hot labels
``Y_k (N, C)``, mean aggregation ``Â_k = D_k⁻¹A_k`` and features ``H_k (N, d)``,

    Z_k = H_k W₁ᵀ + (Â_k H_k) W₂ᵀ                                 (N, C)
    f_k = ‖Z_k − Y_k‖²_F / (2N) + λ_W₁/2 ‖W₁‖² + λ_W₂/2 ‖W₂‖² + λ_H/2 ‖H_k‖²

(``W₁`` is left out, = 0, without the self weight). The paper proves that on *regular* SBM
graphs — every node with the same number of neighbours inside and outside its community —
the minimisers are collapsed (``H_k`` constant on each community: NC1 = 0), and that
exact collapse is not a minimiser in general. Here ``F = Σ_k f_k`` is minimised by full-batch
gradient descent (:func:`fit_gufm`), the setting of the paper's gUFM experiments (its code
cycles over the graphs, one step on each ``f_k`` in turn; one step on ``F`` moves each
``H_k`` as its own step would and the weights as the K steps of one such cycle, to first
order in the step size).

Collapse of the weights and means (:func:`frame_metrics`), for MSE without bias the theory's
targets are orthogonal frames rather than simplices: with ``M̄ = [μ_c]`` (C, d) the
*uncentred* class means,

    NC2_OF(X)  = ‖X Xᵀ/‖X Xᵀ‖_F − I_C/√C‖_F     (0 iff the rows are orthogonal with equal norms)
    NC3(X, X') = ‖X/‖X‖_F − X'/‖X'‖_F‖_F         (0 iff proportional)

reported for the features' means, for ``W₁``, ``W₂``, between each weight and the means it
reads, and for the class means of the combined output ``Z`` (whose target is ``I_C``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from zoo.graphs.collapse import class_statistics, nc_from_statistics
from zoo.graphs.models import aggregate, propagation_matrix

__all__ = ["alignment_distance", "fit_gufm", "frame_metrics", "orthogonal_frame_distance"]


def orthogonal_frame_distance(x: Tensor) -> Tensor:
    """``‖X Xᵀ/‖X Xᵀ‖_F − I/√C‖_F`` for rows ``x: (..., C, F)`` → ``(...)``, float64."""
    x = x.double()
    gram = x @ x.transpose(-1, -2)
    c = x.shape[-2]
    gram = gram / torch.linalg.matrix_norm(gram).clamp_min(1e-300)[..., None, None]
    eye = torch.eye(c, dtype=gram.dtype, device=gram.device) / math.sqrt(c)
    return torch.linalg.matrix_norm(gram - eye)


def alignment_distance(a: Tensor, b: Tensor) -> Tensor:
    """``‖A/‖A‖_F − B/‖B‖_F‖_F`` for ``a, b: (..., C, F)`` → ``(...)``, float64."""
    a, b = a.double(), b.double()
    a = a / torch.linalg.matrix_norm(a).clamp_min(1e-300)[..., None, None]
    b = b / torch.linalg.matrix_norm(b).clamp_min(1e-300)[..., None, None]
    return torch.linalg.matrix_norm(a - b)


def _class_means(x: Tensor, y: Tensor, c: int, batch: Tensor | None) -> Tensor:
    """Per-graph uncentred class means ``(G, C, F)`` of ``x: (N, F)``."""
    counts, sums, _ = class_statistics(x, y, c, batch)
    return sums / counts.clamp_min(1).unsqueeze(-1)


def frame_metrics(
    h: Tensor,
    ah: Tensor,
    labels: Tensor,
    num_classes: int,
    w1: Tensor | None,
    w2: Tensor,
    batch: Tensor | None = None,
) -> dict[str, Tensor]:
    """Per graph (G,): NC1 of H and ÂH, and the orthogonal-frame collapse of means and weights.

    Args:
        h: (N, d) features, ah: (N, d) their aggregation ÂH, labels: (N,), batch: (N,).
        w1: (C, d) self weight or ``None``; w2: (C, d) neighbour weight.

    Returns:
        ``nc1_h``, ``nc1_ah``, ``nc2_of_h`` (uncentred means of H), ``nc2_of_ah``,
        ``nc2_of_w2``, ``nc3_w2`` (W₂ vs the means of ÂH it reads), ``nc2_of_out`` (class means
        of Z = HW₁ᵀ + ÂHW₂ᵀ vs the orthogonal frame I_C), plus ``nc2_of_w1``, ``nc3_w1`` (W₁ vs
        the means of H) and ``nc3_w1_w2`` (W₁ vs W₂) with a self weight; each (G,) float64.
    """
    c = num_classes
    out = {}
    for key, x in (("h", h), ("ah", ah)):
        counts, sums, second = class_statistics(x, labels, c, batch)
        out[f"nc1_{key}"] = nc_from_statistics(counts, sums, second)["nc1"]
        out[f"nc2_of_{key}"] = orthogonal_frame_distance(sums / counts.clamp_min(1)[..., None])
    means_ah = _class_means(ah, labels, c, batch)
    g = means_ah.shape[0]
    out["nc2_of_w2"] = orthogonal_frame_distance(w2.detach()).expand(g)
    out["nc3_w2"] = alignment_distance(w2.detach().expand(g, -1, -1), means_ah)
    z = ah @ w2.detach().T
    if w1 is not None:
        z = z + h @ w1.detach().T
        means_h = _class_means(h, labels, c, batch)
        out["nc2_of_w1"] = orthogonal_frame_distance(w1.detach()).expand(g)
        out["nc3_w1"] = alignment_distance(w1.detach().expand(g, -1, -1), means_h)
        out["nc3_w1_w2"] = alignment_distance(w1.detach(), w2.detach()).expand(g)
    out["nc2_of_out"] = orthogonal_frame_distance(_class_means(z, labels, c, batch))
    return out


def fit_gufm(
    graphs: Sequence[Any],
    num_classes: int,
    *,
    width: int = 8,
    self_weight: bool = False,
    lr: float = 0.1,
    steps: int = 20000,
    lambda_w: float = 5e-3,
    lambda_h: float = 5e-3,
    h_std: float = 1.0,
    log_every: int = 500,
    generator: torch.Generator | None = None,
) -> dict[str, Any]:
    """Minimise the gUFM objective on ``graphs`` by full-batch gradient descent (float64).

    Args:
        graphs: K PyG ``Data`` with ``edge_index`` and ``y`` (N nodes each; ``x`` unused).
        num_classes: C.
        width: d, the feature dimension.
        self_weight: include W₁ (otherwise Z = ÂH W₂ᵀ).
        lr: gradient-descent step on ``F = Σ_k f_k``.
        steps: gradient steps.
        lambda_w, lambda_h: weight decay of W₁, W₂ and of the features.
        h_std: standard deviation of the Gaussian initial features (weights: N(0, 1)).
        log_every: record :func:`frame_metrics` and the objective every this many steps.
        generator: randomness of the initialisation.

    Returns:
        ``{"steps": [t…], "objective": [...], "<metric>": [(K,) per recorded step], "w1",
        "w2", "h" (final tensors)}``.
    """
    from torch_geometric.data import Batch

    data = Batch.from_data_list(list(graphs))
    k, n_total = data.num_graphs, data.num_nodes
    y = data.y.long()
    onehot = torch.nn.functional.one_hot(y, num_classes).double()
    n_per = torch.bincount(data.batch, minlength=k).double()[data.batch].unsqueeze(1)  # N_k
    a, a_t = propagation_matrix(data.edge_index, n_total, "mean")
    ctx = {"a": a.to(torch.float64), "a_t": a_t.to(torch.float64)}
    opts = {"dtype": torch.float64, "generator": generator}
    w2 = torch.randn(num_classes, width, **opts).requires_grad_()
    w1 = torch.randn(num_classes, width, **opts).requires_grad_() if self_weight else None
    h = (torch.randn(n_total, width, **opts) * h_std).requires_grad_()
    weights = [w for w in (w1, w2) if w is not None]
    opt = torch.optim.SGD([*weights, h], lr=lr)
    trace: dict[str, Any] = {"steps": [], "objective": []}

    def objective() -> tuple[Tensor, Tensor]:
        ah = aggregate(ctx, h)
        z = ah @ w2.T + (h @ w1.T if w1 is not None else 0.0)
        fit = ((z - onehot).pow(2) / (2 * n_per)).sum()  # Σ_k ‖Z_k − Y_k‖² / 2N_k
        reg = k * lambda_w / 2 * sum(w.pow(2).sum() for w in weights)
        return fit + reg + lambda_h / 2 * h.pow(2).sum(), ah

    for t in range(steps + 1):
        loss, ah = objective()
        if t % log_every == 0 or t == steps:
            vals = frame_metrics(h.detach(), ah.detach(), y, num_classes, w1, w2, data.batch)
            trace["steps"].append(t)
            trace["objective"].append(float(loss.detach()))
            for key, v in vals.items():
                trace.setdefault(key, []).append(v)
        if t == steps:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    trace.update(w1=w1, w2=w2.detach(), h=h.detach())
    return trace
