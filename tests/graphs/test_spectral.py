"""Spectral baseline: operators vs dense references, recovery above/below threshold, model."""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch
from torch_geometric.data import Batch, Data
from torch_geometric.utils import stochastic_blockmodel_graph

import zoo
from zoo.core.evaluation import fold
from zoo.graphs.collapse import nc_metrics, overlap
from zoo.graphs.spectral import (
    bethe_hessian_matvec,
    kmeans,
    power_iterations,
    predict,
    spectral_embedding,
)


def sbm_batch(n: int, c: int, a: float, b: float, graphs: int, seed: int = 0):
    """Graphs from torch_geometric's reference sampler, batched PyG-style."""
    torch.manual_seed(seed)
    probs = [[a / n if i == j else b / n for j in range(c)] for i in range(c)]
    data = []
    for _ in range(graphs):
        ei = stochastic_blockmodel_graph([n // c] * c, probs)
        y = torch.arange(c).repeat_interleave(n // c)
        data.append(Data(x=torch.randn(n, 2), edge_index=ei, y=y, num_nodes=n))
    return Batch.from_data_list(data)


def dense(edge_index: torch.Tensor, n: int) -> torch.Tensor:
    a = torch.zeros(n, n, dtype=torch.float64)
    a[edge_index[1], edge_index[0]] = 1.0
    return a


@pytest.fixture(scope="module")
def easy() -> Batch:
    return sbm_batch(400, 2, 30.0, 2.0, graphs=4)  # SNR (a−b)²/(2(a+b)) = 12.25


def test_bethe_hessian_matvec_matches_dense(easy: Batch) -> None:
    n = 400
    ei = easy[0].edge_index
    a = dense(ei, n)
    d = a.sum(1)
    r = math.sqrt(d.mean())
    h = (r * r - 1) * torch.eye(n, dtype=torch.float64) - r * a + torch.diag(d)
    x = torch.randn(n, 3, dtype=torch.float64)
    got = bethe_hessian_matvec(ei, x, torch.full((n,), r, dtype=torch.float64), d)
    torch.testing.assert_close(got, h @ x)


@pytest.mark.parametrize("operator", ["laplacian", "bethe_hessian"])
def test_converges_to_the_dense_informative_eigenvector(easy: Batch, operator: str) -> None:
    n = 400
    ei = easy[0].edge_index
    a = dense(ei, n)
    d = a.sum(1)
    if operator == "laplacian":
        dm = torch.where(d > 0, d.rsqrt(), torch.zeros_like(d))
        lap = torch.eye(n, dtype=torch.float64) - dm[:, None] * a * dm[None, :]
        vecs = torch.linalg.eigh(lap).eigenvectors
    else:
        r = math.sqrt(d.mean())
        bh = (r * r - 1) * torch.eye(n, dtype=torch.float64) - r * a + torch.diag(d)
        vecs = torch.linalg.eigh(bh).eigenvectors
    ref = vecs[:, 1]  # second-smallest: the first one is the trivial direction
    emb = spectral_embedding(
        ei, n, 2, operator=operator, n_iter=150, generator=torch.Generator().manual_seed(0)
    )
    cos = (emb[:, 0] @ ref).abs() / emb[:, 0].norm()
    assert cos > 0.99


@pytest.mark.parametrize("operator", ["laplacian", "bethe_hessian"])
def test_easy_sbm_is_recovered(easy: Batch, operator: str) -> None:
    emb = spectral_embedding(
        easy.edge_index, easy.num_nodes, 2, operator=operator, n_iter=48, batch=easy.batch,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    ov = overlap(predict(emb, 2, easy.batch), easy.y, 2, easy.batch)
    assert ov.min() > 0.9


@pytest.mark.parametrize("operator", ["laplacian", "bethe_hessian"])
def test_below_threshold_is_near_chance(operator: str) -> None:
    data = sbm_batch(400, 2, 6.0, 3.0, graphs=4, seed=1)  # SNR = 9/18 = 0.5 < 1
    emb = spectral_embedding(
        data.edge_index, data.num_nodes, 2, operator=operator, n_iter=48, batch=data.batch,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    ov = overlap(predict(emb, 2, data.batch), data.y, 2, data.batch)
    assert ov.mean() < 0.15


def test_three_communities_with_kmeans() -> None:
    data = sbm_batch(300, 3, 36.0, 2.0, graphs=2, seed=2)
    for op in ("laplacian", "bethe_hessian"):
        emb = spectral_embedding(
            data.edge_index, data.num_nodes, 3, operator=op, n_iter=64, batch=data.batch,
            generator=torch.Generator().manual_seed(0),
        )  # fmt: skip
        assert emb.shape == (600, 2)
        ov = overlap(predict(emb, 3, data.batch), data.y, 3, data.batch)
        assert ov.min() > 0.9, op


@pytest.mark.parametrize("operator", ["laplacian", "bethe_hessian"])
def test_batch_equals_graphs_one_by_one(easy: Batch, operator: str) -> None:
    """The block-diagonal batch is exactly the per-graph computation (same start)."""
    k = 1 if operator == "laplacian" else 2
    x0 = torch.randn(
        easy.num_nodes, k, dtype=torch.float64, generator=torch.Generator().manual_seed(3)
    )
    its = list(
        power_iterations(
            easy.edge_index,
            easy.num_nodes,
            2,
            operator=operator,
            n_iter=10,
            batch=easy.batch,
            x0=x0,
        )
    )
    assert len(its) == 11
    for g in range(easy.num_graphs):
        sl = slice(int(easy.ptr[g]), int(easy.ptr[g + 1]))
        one = spectral_embedding(
            easy[g].edge_index, 400, 2, operator=operator, n_iter=10, x0=x0[sl]
        )
        torch.testing.assert_close(its[-1][sl], one, rtol=1e-6, atol=1e-9)
        torch.testing.assert_close(its[-1][sl].pow(2).sum(), torch.tensor(1.0, dtype=torch.float64))


def test_laplacian_iterates_are_orthogonal_to_the_trivial_vector(easy: Batch) -> None:
    d = torch.zeros(easy.num_nodes, dtype=torch.float64).index_add_(
        0, easy.edge_index[1], torch.ones(easy.edge_index.shape[1], dtype=torch.float64)
    )
    for emb in power_iterations(
        easy.edge_index, easy.num_nodes, 2, operator="laplacian", n_iter=3, batch=easy.batch
    ):
        dots = torch.zeros(easy.num_graphs, dtype=torch.float64).index_add_(
            0, easy.batch, d.sqrt() * emb[:, 0]
        )
        assert dots.abs().max() < 1e-10


def test_deterministic_given_generator(easy: Batch) -> None:
    run = [
        spectral_embedding(
            easy.edge_index, easy.num_nodes, 2, n_iter=5, batch=easy.batch,
            generator=torch.Generator().manual_seed(7),
        )
        for _ in range(2)
    ]  # fmt: skip
    assert torch.equal(run[0], run[1])


def test_kmeans_recovers_separated_clusters() -> None:
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]], dtype=torch.float64)
    lab = torch.arange(3).repeat(40)
    x = centres[lab] + 0.3 * torch.randn(120, 2, generator=g, dtype=torch.float64)
    batch = torch.arange(2).repeat_interleave(60)
    pred = kmeans(x, 3, batch)
    assert overlap(pred, lab, 3, batch).min() == pytest.approx(1.0)


def test_errors() -> None:
    ei = torch.tensor([[0, 1], [1, 0]])
    with pytest.raises(ValueError, match="operator"):
        next(power_iterations(ei, 2, 2, operator="adjacency"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="x0 must be"):
        next(power_iterations(ei, 2, 2, operator="bethe_hessian", x0=torch.zeros(2, 1)))
    with pytest.raises(ValueError, match="embedding must be"):
        predict(torch.zeros(4, 2), 2)
    with pytest.raises(ValueError, match="operator"):
        zoo.create("spectral_sbm", operator="power")


def test_spectral_sbm_model_through_lightning(tmp_path) -> None:
    model = zoo.create("spectral_sbm", n_iter=24, log_every=8)
    assert sum(p.numel() for p in model.parameters()) == 0
    dm = zoo.create_datamodule(model, n_nodes=300, p=0.1, q=0.005, n_val=2, n_test=4, batch_size=2)
    trainer = pl.Trainer(
        fast_dev_run=True,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, datamodule=dm)
    res = trainer.test(model, datamodule=dm, verbose=False)[0]
    assert res["test/overlap"] > 0.9
    keys = {f"test/nc/iter_{t:03d}/nc1_log10_mean" for t in (0, 8, 16, 24)}
    assert keys | {"test/nc/iter_024/nc2", "test/nc/iter_024/nc1_tilde_median"} <= set(res)
    assert res["test/nc/iter_024/nc1_log10_mean"] < res["test/nc/iter_000/nc1_log10_mean"] - 1
    card = model.model_card_extra(fold(res))
    assert "| 24 |" in card and ", n = 2 |" in card  # fast_dev_run: one batch of 2 graphs
    assert (tmp_path / "figures" / "test_nc1_vs_layer.png").is_file()  # configure_callbacks
    path = zoo.save_checkpoint(model, tmp_path / "spectral_sbm", metrics=res)
    loaded = zoo.load(path)
    batch = Batch.from_data_list(dm.split("test")[:2])
    torch.testing.assert_close(
        loaded(batch.x, batch.edge_index, batch.batch),
        model(batch.x, batch.edge_index, batch.batch),
    )
    torch.testing.assert_close(loaded(batch), model(batch.x, batch.edge_index, batch.batch))
    assert loaded.zoo_metrics["test/overlap"] == pytest.approx(res["test/overlap"])


def _test_metrics(model: zoo.core.ZooModule, dm: object, tmp_path) -> dict[str, float]:
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, default_root_dir=tmp_path)
    return {k: float(v) for k, v in trainer.test(model, datamodule=dm, verbose=False)[0].items()}


def test_spectral_estimates_equal_a_direct_computation(tmp_path) -> None:
    """Overlap and NC summaries are the statistics of per-graph values computed here from
    the power iterates of the whole test split (one batch, so the same start vectors)."""
    n = 7
    model = zoo.create("spectral_sbm", n_iter=12, log_every=5)
    dm = zoo.create_datamodule(model, n_nodes=200, p=0.1, q=0.03, n_test=n, batch_size=n)
    res = _test_metrics(model, dm, tmp_path)
    data = Batch.from_data_list(dm.split("test"))
    its = list(
        power_iterations(
            data.edge_index, data.num_nodes, 2, n_iter=12, batch=data.batch,
            generator=torch.Generator().manual_seed(0),
        )
    )  # fmt: skip
    ov = overlap(predict(its[-1], 2, data.batch), data.y, 2, data.batch)
    expected = {"test/overlap": float(ov.mean())}
    for t in (0, 5, 10, 12):
        keys = ("nc1", "nc1_tilde", "nc2") if t == 12 else ("nc1",)
        per = [nc_metrics(its[t][data.batch == g], data.y[data.batch == g]) for g in range(n)]
        for key in keys:
            v = torch.tensor([p[key] for p in per], dtype=torch.float64)
            name = f"test/nc/iter_{t:03d}/{key}"
            if key == "nc2":
                expected[name] = float(v.mean())
                continue
            expected[f"{name}_log10_mean"] = float(v.log10().mean())
            expected[f"{name}_log10_std"] = float(v.log10().std(correction=0))
            expected[f"{name}_median"] = float(v.median())
    assert {k for k in res if not k.endswith(("_ci_lo", "_ci_hi", "_n"))} == set(expected)
    for key, want in expected.items():
        assert res[key] == pytest.approx(want, rel=1e-5, abs=1e-7), key
        assert res[f"{key}_ci_lo"] <= res[key] <= res[f"{key}_ci_hi"] and res[f"{key}_n"] == n
    assert 0.2 < res["test/overlap"] < 0.99  # a hard SBM: the overlap varies over graphs
    widths = []
    for n_test in (n, 16 * n):
        dm = zoo.create_datamodule(model, n_nodes=200, p=0.1, q=0.03, n_test=n_test, seed=1)
        r = _test_metrics(model, dm, tmp_path)
        widths.append(r["test/overlap_ci_hi"] - r["test/overlap_ci_lo"])
    assert 0 < widths[1] < widths[0] / 2  # ~1/√n: a factor 4 expected
