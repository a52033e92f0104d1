"""Spectral community detection by projected power iteration, and the ``spectral_sbm`` model.

Two operators on a (batch of) undirected graph(s) ``A`` with degrees ``D``
(the spectral baselines of Kothapalli, Tirer & Bruna, 2023):

- normalised Laplacian ``L = I − D^{-1/2} A D^{-1/2}``: the informative eigenvectors are
  those of the smallest non-trivial eigenvalues. Power iteration runs on the shifted
  operator ``2I − L = I + D^{-1/2} A D^{-1/2}`` (spectrum in ``[0, 2]``, so the smallest
  eigenvalues of ``L`` become the largest in magnitude), projecting out the trivial
  eigenvector ``D^{1/2} 1`` of every graph at every step; ``C − 1`` vectors are iterated.
- Bethe Hessian ``H(r) = (r² − 1) I − r A + D`` with ``r = √(mean degree)`` of each graph:
  the informative eigenvectors are those of its negative eigenvalues. Power iteration runs
  on ``s I − H`` with ``s ≈ λ_max(H)`` per graph (a Rayleigh-quotient estimate from 30
  power steps on ``H``, capped by the Gershgorin bound ``max_i (r² − 1 + (1 + r) d_i)``), so
  the most negative eigenvalues of ``H`` dominate; the whole spectrum of ``sI − H`` then
  lies in ``[s − λ_max, s − λ_min]`` and an estimate a little below ``λ_max`` costs nothing
  since ``|s − λ_max| ≪ s − λ_min``. The rate is ``(s − λ_info)/(s − λ_bulk)``, close to 1
  near the detectability threshold: this baseline is slow there by nature. ``C`` vectors are
  iterated; after each step a per-graph Rayleigh–Ritz rotation orders them by ``xᵀHx`` and
  the first (most negative, the trivial "degree" direction) is dropped, leaving ``C − 1``.

Every step orthonormalises the ``k`` vectors of each graph separately (Cholesky QR of the
per-graph ``k × k`` Gram matrix), so a batch of graphs is one block-diagonal sparse
operator applied with ``index_add`` on ``edge_index``: O(k (N + E)) per step, no dense
``N × N`` matrix and no sparse extras. :func:`power_iterations` yields the ``(N, C − 1)``
embedding after every step (NC metrics per iteration); :func:`predict` turns an embedding
into communities: ``sign(x)`` for C = 2, per-graph k-means (Lloyd, farthest-point seeding,
vectorised over graphs) for C > 2.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from zoo.core.config import Footprint, Interval, Seed
from zoo.core.evaluation import Columns, Statistic, mean
from zoo.core.module import ZooModule
from zoo.core.registry import register_model
from zoo.graphs.collapse import (
    LOG_SUMMARY_COLUMNS,
    class_statistics,
    nc_from_statistics,
    nc_statistics,
    overlap,
    summary_table,
)
from zoo.graphs.data import SBMDataModule

__all__ = [
    "OPERATORS",
    "SpectralSBM",
    "bethe_hessian_matvec",
    "kmeans",
    "power_iterations",
    "predict",
    "spectral_embedding",
]

Operator = Literal["laplacian", "bethe_hessian"]
OPERATORS: tuple[str, ...] = ("laplacian", "bethe_hessian")
_SHIFT_STEPS = 30  # power steps estimating λ_max(H) for the Bethe-Hessian shift


def _graph_index(batch: Tensor | None, n: int, device: torch.device) -> tuple[Tensor, int]:
    if batch is None:
        return torch.zeros(n, dtype=torch.long, device=device), 1
    if batch.shape != (n,):
        raise ValueError(f"batch must be (N,) with N={n}, got shape {tuple(batch.shape)}")
    return batch.long(), int(batch.max()) + 1


def _adj_matvec(edge_index: Tensor, x: Tensor, weight: Tensor | None = None) -> Tensor:
    """``A x`` with ``A_ij`` = (weighted) number of edges ``j → i``: x (N, k) → (N, k)."""
    src, dst = edge_index
    msg = x[src] if weight is None else x[src] * weight.unsqueeze(-1)
    return torch.zeros_like(x).index_add_(0, dst, msg)


def bethe_hessian_matvec(edge_index: Tensor, x: Tensor, r: Tensor, deg: Tensor) -> Tensor:
    """``H(r) x = (r² − 1) x − r A x + D x``: x (N, k), r (N,) per node, deg (N,) → (N, k)."""
    rr = r.unsqueeze(-1)
    return (rr * rr - 1.0 + deg.unsqueeze(-1)) * x - rr * _adj_matvec(edge_index, x)


def _orthonormalise(x: Tensor, group: Tensor, g: int) -> Tensor:
    """Per-graph Cholesky QR: columns of each graph's block of x (N, k) made orthonormal."""
    k = x.shape[1]
    gram = torch.zeros(g, k, k, dtype=x.dtype, device=x.device)
    gram.index_add_(0, group, x.unsqueeze(2) * x.unsqueeze(1))
    eye = torch.eye(k, dtype=x.dtype, device=x.device)
    scale = gram.diagonal(dim1=-2, dim2=-1).mean(-1).clamp_min(1e-300)
    chol, _ = torch.linalg.cholesky_ex(gram + 1e-12 * scale[:, None, None] * eye)
    inv_t = torch.linalg.solve_triangular(chol, eye.expand(g, k, k), upper=False).transpose(1, 2)
    return torch.bmm(x.unsqueeze(1), inv_t[group]).squeeze(1)


def power_iterations(
    edge_index: Tensor,
    num_nodes: int,
    num_classes: int = 2,
    *,
    operator: Operator = "bethe_hessian",
    n_iter: int = 64,
    batch: Tensor | None = None,
    r: float | Tensor | None = None,
    generator: torch.Generator | None = None,
    x0: Tensor | None = None,
) -> Iterator[Tensor]:
    """Projected power iteration; yields the ``(N, C − 1)`` embedding at steps 0..n_iter.

    Args:
        edge_index: (2, E) undirected edges (both directions present), PyG convention.
        num_nodes: N (all graphs of the batch together).
        num_classes: C; C − 1 informative directions are tracked.
        operator: ``"laplacian"`` (shifted normalised Laplacian) or ``"bethe_hessian"``.
        n_iter: number of power steps (``n_iter + 1`` embeddings are yielded).
        batch: (N,) graph index of every node (PyG), ``None`` for one graph.
        r: Bethe-Hessian parameter, a float or (G,) per graph (default ``√(mean degree)``).
        generator: randomness of the Gaussian start vectors.
        x0: (N, k) start vectors instead of random ones (k = C − 1, or C for the Bethe
            Hessian).

    Yields:
        (N, C − 1) float64 embeddings, orthonormal per graph; step 0 is the projected start.
    """
    if operator not in OPERATORS:
        raise ValueError(f"operator={operator!r} must be one of {OPERATORS}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if n_iter < 0:
        raise ValueError(f"n_iter must be >= 0, got {n_iter}")
    device = edge_index.device
    group, g = _graph_index(batch, num_nodes, device)
    deg = torch.zeros(num_nodes, dtype=torch.float64, device=device)
    deg.index_add_(
        0, edge_index[1], torch.ones(edge_index.shape[1], dtype=torch.float64, device=device)
    )
    k = num_classes - 1 if operator == "laplacian" else num_classes
    if x0 is None:
        x = torch.randn(num_nodes, k, generator=generator, device=device, dtype=torch.float64)
    else:
        if x0.shape != (num_nodes, k):
            raise ValueError(f"x0 must be ({num_nodes}, {k}) for {operator}, got {tuple(x0.shape)}")
        x = x0.to(device=device, dtype=torch.float64)
    sizes = torch.zeros(g, dtype=torch.float64, device=device).index_add_(
        0, group, torch.ones(num_nodes, dtype=torch.float64, device=device)
    )

    if operator == "laplacian":
        inv_sqrt = torch.where(deg > 0, deg.rsqrt(), torch.zeros_like(deg))
        w = inv_sqrt[edge_index[0]] * inv_sqrt[edge_index[1]]
        trivial = deg.sqrt()
        norm2 = torch.zeros(g, dtype=torch.float64, device=device).index_add_(0, group, deg)
        trivial = (trivial / norm2.clamp_min(1e-300).sqrt()[group]).unsqueeze(-1)  # (N, 1)

        def project(v: Tensor) -> Tensor:
            dots = torch.zeros(g, k, dtype=v.dtype, device=device).index_add_(0, group, trivial * v)
            return _orthonormalise(v - trivial * dots[group], group, g)

        def step(v: Tensor) -> Tensor:
            return v + _adj_matvec(edge_index, v, w)

        def embed(v: Tensor) -> Tensor:
            return v

    else:
        mean_deg = torch.zeros(g, dtype=torch.float64, device=device).index_add_(0, group, deg)
        mean_deg = mean_deg / sizes.clamp_min(1)
        r_g = (
            mean_deg.sqrt()
            if r is None
            else torch.as_tensor(r, dtype=torch.float64, device=device).expand(g)
        )
        r_n = r_g[group]
        gersh = torch.full((g,), -math.inf, dtype=torch.float64, device=device).scatter_reduce(
            0, group, r_n * r_n - 1.0 + (1.0 + r_n.abs()) * deg, reduce="amax"
        )
        # λ_max(H) per graph: Rayleigh quotient after a few power steps on H + γI (γ makes
        # it positive definite: Gershgorin gives λ_min(H) ≥ −γ), capped by the bound.
        gamma = gersh.clamp_min(0.0)[group].unsqueeze(-1)
        v = (1.0 + deg).unsqueeze(-1)  # deterministic start, leaning to high degrees
        for _ in range(_SHIFT_STEPS):
            v = _orthonormalise(bethe_hessian_matvec(edge_index, v, r_n, deg) + gamma * v, group, g)
        hv = bethe_hessian_matvec(edge_index, v, r_n, deg)
        lam = torch.zeros(g, dtype=torch.float64, device=device).index_add_(
            0, group, (v * hv)[:, 0]
        )
        shift = torch.minimum(lam, gersh).clamp_min(0.0)[group].unsqueeze(-1)

        def project(v: Tensor) -> Tensor:
            return _orthonormalise(v, group, g)

        def step(v: Tensor) -> Tensor:
            return shift * v - bethe_hessian_matvec(edge_index, v, r_n, deg)

        def embed(v: Tensor) -> Tensor:
            hv = bethe_hessian_matvec(edge_index, v, r_n, deg)
            ritz = torch.zeros(g, k, k, dtype=v.dtype, device=device)
            ritz.index_add_(0, group, v.unsqueeze(2) * hv.unsqueeze(1))
            _, vecs = torch.linalg.eigh(0.5 * (ritz + ritz.transpose(1, 2)))  # ascending
            rot = torch.bmm(v.unsqueeze(1), vecs[group]).squeeze(1)
            return rot[:, 1:]

    x = project(x)
    yield embed(x)
    for _ in range(n_iter):
        x = project(step(x))
        yield embed(x)


def spectral_embedding(
    edge_index: Tensor, num_nodes: int, num_classes: int = 2, **kwargs: Any
) -> Tensor:
    """The final (N, C − 1) embedding of :func:`power_iterations` (same arguments)."""
    *_, last = power_iterations(edge_index, num_nodes, num_classes, **kwargs)
    return last


def kmeans(x: Tensor, num_clusters: int, batch: Tensor | None = None, n_iter: int = 30) -> Tensor:
    """Per-graph k-means (Lloyd) of x (N, d), vectorised over graphs: labels (N,).

    Seeding is deterministic farthest-point: the first centre is the point of largest norm,
    each next one the point farthest from the centres chosen so far.
    """
    from torch_geometric.utils import to_dense_batch

    group, g = _graph_index(batch, x.shape[0], x.device)
    order = torch.argsort(group, stable=True)
    dense, mask = to_dense_batch(x[order], group[order], batch_size=g)  # (G, M, d)
    gi = torch.arange(g, device=x.device)
    first = dense.norm(dim=-1).masked_fill(~mask, -1.0).argmax(-1)
    centres = [dense[gi, first]]
    mind = (dense - centres[0].unsqueeze(1)).pow(2).sum(-1)
    for _ in range(1, num_clusters):
        nxt = mind.masked_fill(~mask, -1.0).argmax(-1)
        centres.append(dense[gi, nxt])
        mind = torch.minimum(mind, (dense - centres[-1].unsqueeze(1)).pow(2).sum(-1))
    cent = torch.stack(centres, 1)  # (G, K, d)
    for _ in range(n_iter):
        assign = torch.cdist(dense, cent).argmin(-1)  # (G, M)
        onehot = torch.nn.functional.one_hot(assign, num_clusters).to(x.dtype) * mask.unsqueeze(-1)
        cnt = onehot.sum(1)  # (G, K)
        new = onehot.transpose(1, 2) @ dense / cnt.clamp_min(1).unsqueeze(-1)
        cent = torch.where(cnt.unsqueeze(-1) > 0, new, cent)
    assign = torch.cdist(dense, cent).argmin(-1)
    out = torch.empty(x.shape[0], dtype=torch.long, device=x.device)
    out[order] = assign[mask]
    return out


def _column(step: int, key: str) -> str:
    """The column (and logged name, after ``test/``) of an NC value at power step ``step``."""
    return f"nc/iter_{step:03d}/{key}"


def predict(embedding: Tensor, num_classes: int, batch: Tensor | None = None) -> Tensor:
    """Communities from an (N, C − 1) embedding: ``sign(x)`` (C = 2) or per-graph k-means."""
    if embedding.shape[1] != num_classes - 1:
        raise ValueError(f"embedding must be (N, {num_classes - 1}), got {tuple(embedding.shape)}")
    if num_classes == 2:
        return (embedding[:, 0] > 0).long()
    return kmeans(embedding, num_classes, batch)


@register_model(
    "spectral_sbm",
    data="sbm",
    data_defaults={"n_train": 1, "n_val": 10, "n_test": 100, "batch_size": 10},
    shared=("n_classes",),
    paper="Kothapalli, Tirer & Bruna, A Neural Collapse Perspective on Feature Evolution in "
    "Graph Neural Networks (NeurIPS 2023): spectral baseline",
)
class SpectralSBM(ZooModule):
    """Non-trained spectral baseline: projected power iteration (Bethe Hessian or Laplacian).

    ``forward(x, edge_index, batch)`` returns the (N, C − 1) embedding after ``n_iter``
    steps. Validation logs ``val/overlap``; the test stage logs ``test/overlap`` (mean over
    graphs of each graph's overlap) and, every ``log_every`` steps (and at the last), the
    summaries over graphs of each graph's NC1 of the embedding,
    ``test/nc/iter_{t:03d}/nc1_{log10_mean,log10_std,median}``, plus those of ``nc1_tilde``
    and the mean ``nc2`` at the last step (:func:`zoo.graphs.collapse.nc_statistics`), each
    with its bootstrap interval over the test graphs; :class:`CollapsePlotCallback` draws
    NC1 vs iteration after testing. No trainable parameters: fitting is a no-op
    (``configure_optimizers`` returns ``None``), the state dict is empty.

    Args:
        operator: ``"bethe_hessian"`` or ``"laplacian"``.
        n_iter: power-iteration steps.
        n_classes: C of the SBM (must match the data's ``n_classes``).
        log_every: NC1 logging period in steps.
        seed: seed of the random start vectors (every batch restarts from it).
    """

    monitor = "val/overlap"
    monitor_mode = "max"

    def __init__(
        self,
        operator: Operator = "bethe_hessian",
        n_iter: Annotated[int, Interval(ge=0)] = 64,
        n_classes: Annotated[int, Interval(ge=2, le=8)] = 2,
        log_every: Annotated[int, Interval(ge=1)] = 8,
        seed: Seed = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        # one row per graph: val the overlap, test also the NC values of the logged steps
        self.graph_columns = nn.ModuleDict(
            {
                "val": Columns(["overlap"]),
                "test": Columns(["overlap", *(_column(t, k) for t, k in self._nc_logged())]),
            }
        )

    def _nc_logged(self) -> list[tuple[int, str]]:
        """``(step t, NC key)`` logged on the test stage: NC1 every ``log_every`` steps and
        at the last, ÑC1 and NC2 at the last."""
        hp = self.hparams
        steps = sorted({*range(0, hp.n_iter + 1, hp.log_every), hp.n_iter})
        return [(t, "nc1") for t in steps] + [(hp.n_iter, k) for k in ("nc1_tilde", "nc2")]

    @classmethod
    def footprint(cls, hp: Mapping[str, Any], data: Mapping[str, Any]) -> Footprint:
        """No weights; per batch of SBM graphs a few (N, C) iterates and the sparse operator
        (12 bytes per directed edge, twice). Modules: self and the graph columns (a
        ModuleDict of two Columns, which grow by a few floats per evaluated graph)."""
        batch = data.get("batch_size", 1)
        nodes = data.get("n_nodes", 0) * batch
        edges = SBMDataModule.expected_edges(data) * batch if nodes else 0
        return Footprint(modules=4, other=16 * nodes * hp["n_classes"] + 2 * 2 * edges * 12)

    def _iterates(
        self, edge_index: Tensor, num_nodes: int, batch: Tensor | None
    ) -> Iterator[Tensor]:
        hp = self.hparams
        gen = torch.Generator(device=edge_index.device).manual_seed(hp.seed)
        return power_iterations(
            edge_index, num_nodes, hp.n_classes, operator=hp.operator, n_iter=hp.n_iter,
            batch=batch, generator=gen,
        )  # fmt: skip

    def forward(
        self, x: Tensor | Any, edge_index: Tensor | None = None, batch: Tensor | None = None
    ) -> Tensor:
        """Embedding (N, C − 1) of the graph(s) after ``n_iter`` steps.

        Called as ``model(data)`` with a PyG ``Data``/``Batch`` (like the GNNs), or as
        ``model(x, edge_index, batch)``; node features ``x`` (N, F) are not used (only N).
        """
        if edge_index is None:  # a PyG Data / Batch
            data = x
            x, edge_index, batch = data.x, data.edge_index, getattr(data, "batch", None)
        *_, last = self._iterates(edge_index, x.shape[0], batch)
        return last

    def _check_data(self, data: Any) -> None:
        c = int(data.y.max()) + 1
        if c > self.hparams.n_classes:
            raise ValueError(f"data has {c} classes but n_classes={self.hparams.n_classes}")

    def training_step(self, batch: Any, batch_idx: int) -> None:
        """Nothing to learn: returns ``None`` (Lightning skips the optimisation step)."""
        return None

    def eval_step(self, stage: str, batch: Any) -> None:
        """Per graph of ``batch``: the overlap and (test) the NC values of the logged steps."""
        self._check_data(batch)
        c = self.hparams.n_classes
        b = getattr(batch, "batch", None)
        logged: dict[int, list[str]] = {}
        if stage == "test":
            for t, key in self._nc_logged():
                logged.setdefault(t, []).append(key)
        columns: dict[str, Tensor] = {}
        last = None
        for t, emb in enumerate(self._iterates(batch.edge_index, batch.num_nodes, b)):
            last = emb
            if t in logged:
                nc = nc_from_statistics(*class_statistics(emb, batch.y, c, b))  # each (G,)
                columns.update({_column(t, key): nc[key] for key in logged[t]})
        columns["overlap"] = overlap(predict(last, c, b), batch.y, c, b)
        self.graph_columns[stage].update(**columns)

    def eval_epoch_end(self, stage: str) -> None:
        """Log the epoch's overlap and NC summaries over graphs (intervals on test)."""
        graph_columns = self.graph_columns[stage]
        if graph_columns.n == 0:
            return
        columns = dict(graph_columns.compute())
        graph_columns.reset()
        statistics: dict[str, Statistic] = {"overlap": mean("overlap")}
        for name in columns:
            if name != "overlap":
                statistics.update(nc_statistics(name, name.rsplit("/", 1)[1]))
        self.log_estimates(stage, columns, statistics, prog_bar="overlap")

    def configure_optimizers(self) -> None:
        """No parameters, no optimiser."""
        return None

    def model_card_extra(self, metrics: dict[str, Any]) -> str:
        """Markdown: what the baseline computes and its NC1 per power iteration (test)."""
        hp = self.hparams
        op = (
            "Bethe Hessian (r² − 1)I − rA + D, r = √(mean degree)"
            if hp.operator == "bethe_hessian"
            else ("normalised Laplacian I − D^{-1/2}AD^{-1/2}")
        )
        lines = [
            "## What this checkpoint is",
            "",
            f"No trained weights: projected power iteration on the {op}, {hp.n_iter} steps "
            f"from a Gaussian start (seed {hp.seed}), prediction "
            + ("sign(x)" if hp.n_classes == 2 else "per-graph k-means")
            + ". The weight file is empty; the configuration is the model.",
            "",
        ]
        steps = sorted({t for t, key in self._nc_logged() if key == "nc1"})
        table = summary_table(
            "NC1 of the embedding per power iteration (test graphs)",
            ["iteration t", *(head for _, head in LOG_SUMMARY_COLUMNS)],
            {
                t: [f"test/{_column(t, 'nc1')}_{suffix}" for suffix, _ in LOG_SUMMARY_COLUMNS]
                for t in steps
            },
            metrics,
        )
        if table:
            lines += [
                "NC1 is computed per test graph and summarised over graphs by the mean and "
                "standard deviation of log₁₀ and the median (it is heavy tailed); cells are "
                "value [95 % bootstrap interval over graphs], n = graphs.",
                "",
                *table,
            ]
        return "\n".join(lines)

    def configure_callbacks(self) -> list[pl.Callback]:
        """The NC plot callback (NC1 vs power iteration on the test graphs)."""
        from zoo.graphs.callbacks import CollapsePlotCallback

        return [CollapsePlotCallback()]
