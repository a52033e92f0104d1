"""NC1–NC4: exact references, collapse limits, streaming, invariances, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from zoo.core.evaluation import bootstrap
from zoo.graphs.callbacks import CollapsePlotCallback, parse_nc_metrics
from zoo.graphs.collapse import (
    CollapseMetric,
    LayerwiseCollapse,
    align_labels,
    best_permutation,
    class_statistics,
    crossing_depth,
    nc_metrics,
    nc_statistics,
    overlap,
    summary_table,
)


def numpy_nc(h: np.ndarray, y: np.ndarray, w: np.ndarray | None, c: int) -> dict[str, float]:
    """Direct textbook computation (loops over classes and samples)."""
    n, f = h.shape
    mu_g = h.mean(0)
    mus = np.stack([h[y == k].mean(0) for k in range(c)])
    sw = np.zeros((f, f))
    for i in range(n):
        d = h[i] - mus[y[i]]
        sw += np.outer(d, d)
    sw /= n
    m = mus - mu_g
    sb = sum(np.outer(m[k], m[k]) for k in range(c)) / c
    out = {
        "nc1": float(np.trace(sw @ np.linalg.pinv(sb, rcond=1e-6, hermitian=True)) / c),
        "nc1_tilde": float(np.trace(sw) / np.trace(sb)),
    }
    g = m @ m.T
    etf = (np.eye(c) - np.ones((c, c)) / c) / math.sqrt(c - 1)
    out["nc2"] = float(np.linalg.norm(g / np.linalg.norm(g) - etf))
    if w is not None:
        out["nc3"] = float(np.linalg.norm(w / np.linalg.norm(w) - m / np.linalg.norm(m)))
        pred = (h @ w.T).argmax(1)
        ncc = np.array([np.argmin([np.sum((x - mu) ** 2) for mu in mus]) for x in h])
        out["nc4"] = float(np.mean(pred != ncc))
    return out


def random_case(n: int = 300, f: int = 6, c: int = 3, seed: int = 0, sep: float = 1.0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % c
    means = torch.randn(c, f, generator=g) * sep
    h = means[y] + torch.randn(n, f, generator=g)
    w = means + 0.5 * torch.randn(c, f, generator=g)
    return h, y, w


@pytest.mark.parametrize("c,f", [(2, 1), (3, 6), (4, 2), (5, 8)])
def test_matches_numpy_reference(c: int, f: int) -> None:
    h, y, w = random_case(n=240 + c, f=f, c=c, seed=c)
    ref = numpy_nc(h.double().numpy(), y.numpy(), w.double().numpy(), c)
    got = nc_metrics(h.double(), y, w.double())
    assert set(got) == {"nc1", "nc1_tilde", "nc2", "nc3", "nc4"}
    for k in ref:
        assert got[k] == pytest.approx(ref[k], rel=1e-9, abs=1e-12), k
    assert 0 < got["nc4"] < 1  # noisy case: the NCC rule and W disagree somewhere


def test_keys_without_classifier() -> None:
    h, y, _ = random_case()
    assert set(nc_metrics(h, y)) == {"nc1", "nc1_tilde", "nc2"}


def test_exact_collapse_to_simplex_etf_is_zero() -> None:
    c, f, reps = 4, 6, 25
    etf = torch.eye(c, dtype=torch.float64) - 1.0 / c  # simplex ETF, rotated into R^F
    g = torch.Generator().manual_seed(1)
    q, _ = torch.linalg.qr(torch.randn(f, f, generator=g, dtype=torch.float64))
    means = 3.0 * etf @ q[:c] + torch.randn(f, generator=g, dtype=torch.float64)  # offset
    y = torch.arange(c).repeat(reps)
    out = nc_metrics(means[y], y, classifier_weight=means - means.mean(0))
    for k in ("nc1", "nc1_tilde", "nc2", "nc3", "nc4"):
        assert abs(out[k]) < 1e-9, (k, out[k])


def test_collapse_to_non_etf_means_has_nc1_zero_but_nc2_positive() -> None:
    means = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # not equiangular
    y = torch.arange(3).repeat(10)
    out = nc_metrics(means[y].double(), y)
    assert abs(out["nc1"]) < 1e-12 and out["nc2"] > 0.1


def test_nc1_decreases_with_separation() -> None:
    vals = [nc_metrics(*random_case(sep=s, seed=3)[:2])["nc1"] for s in (0.5, 2.0, 8.0)]
    assert vals[0] > vals[1] > vals[2]


def test_invariant_to_sample_permutation_and_label_renaming() -> None:
    h, y, w = random_case(c=4, f=5, seed=7)
    base = nc_metrics(h.double(), y, w.double())
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    shuffled = nc_metrics(h[perm].double(), y[perm], w.double())
    for k in base:
        assert shuffled[k] == pytest.approx(base[k], rel=1e-10)
    rename = torch.tensor([2, 0, 3, 1])  # class c is renamed rename[c]; W rows follow
    inv = torch.argsort(rename)
    renamed = nc_metrics(h.double(), rename[y], w[inv].double())
    for k in base:
        assert renamed[k] == pytest.approx(base[k], rel=1e-10)


def test_streaming_pooled_equals_one_shot() -> None:
    h, y, w = random_case(n=400, f=5, c=3, seed=11)
    ref = nc_metrics(h.double(), y, w.double())
    metric = CollapseMetric(3, 5)
    for chunk in torch.split(torch.arange(len(y)), 37):
        metric.update(h[chunk], y[chunk])
    got = metric.compute()
    for k in ("nc1", "nc1_tilde", "nc2"):
        assert float(got[k]) == pytest.approx(ref[k], rel=1e-9)
    metric.reset()
    metric.update(h, y, classifier_weight=w)  # one update: NC4 is exact too
    got = metric.compute()
    for k in ref:
        assert float(got[k]) == pytest.approx(ref[k], rel=1e-6)


def test_sum_reduction_of_two_ranks_equals_one_process() -> None:
    """DDP: states are summed across ranks, so two half-metrics merged = the whole."""
    h, y, _ = random_case(n=300, f=4, c=3, seed=5)
    whole, a, b = (CollapseMetric(3, 4) for _ in range(3))
    whole.update(h, y)
    a.update(h[:120], y[:120])
    b.update(h[120:], y[120:])
    a.merge_state(b)
    for k, v in whole.compute().items():
        assert float(a.compute()[k]) == pytest.approx(float(v), rel=1e-10)
    assert all(fx.__name__ == "dim_zero_sum" for fx in whole._reductions.values())


def _graphs(k: int = 5, c: int = 2, f: int = 3, seed: int = 20):
    """k graphs of different sizes: features, labels and the batch vector, concatenated."""
    graphs = [random_case(n=60 + 6 * i, f=f, c=c, seed=seed + i) for i in range(k)]
    h = torch.cat([g[0] for g in graphs]).double()
    y = torch.cat([g[1] for g in graphs])
    batch = torch.cat([torch.full((len(g[1]),), i) for i, g in enumerate(graphs)])
    return graphs, h, y, batch


def test_stacked_class_statistics_equal_each_layer_alone() -> None:
    _, h, y, batch = _graphs(k=4, c=3, f=4)
    layers = torch.stack([h, 2 * h - 1, h.flip(1)])  # (L, N, F)
    counts, sums, second = class_statistics(layers, y, 3, batch)
    assert sums.shape == (3, 4, 3, 4) and second.shape == (3, 4, 4, 4)
    for i, layer in enumerate(layers):
        c1, s1, q1 = class_statistics(layer, y, 3, batch)
        assert torch.equal(counts, c1)
        torch.testing.assert_close(sums[i], s1)
        torch.testing.assert_close(second[i], q1)
    one = class_statistics(layers[:, :66], y[:66], 3)  # one graph: no padding path
    torch.testing.assert_close(one[2][1, 0], layers[1, :66].T @ layers[1, :66])


def test_layerwise_values_are_each_graph_alone_and_batching_invariant() -> None:
    graphs, h, y, batch = _graphs()
    w = graphs[0][2].double()
    per = [nc_metrics(hi.double(), yi, w) for hi, yi, _ in graphs]
    one, two = LayerwiseCollapse(2, 3, 2), LayerwiseCollapse(2, 3, 2)
    one.update([3 * h, h], y, batch, classifier_weight=w)  # all graphs in one update
    for hi, yi, _ in graphs:  # one graph per update
        two.update([3 * hi.double(), hi.double()], yi, classifier_weight=w)
    for tracker in (one, two):
        out = tracker.compute()
        assert set(out) == {
            f"layer_0{i}/{k}" for i in (0, 1) for k in ("nc1", "nc1_tilde", "nc2")
        } | {
            "layer_01/nc3",
            "layer_01/nc4",
        }
        for k in ("nc1", "nc1_tilde", "nc2", "nc3", "nc4"):
            ref = torch.tensor([p[k] for p in per], dtype=torch.float64)
            torch.testing.assert_close(out[f"layer_01/{k}"], ref, rtol=1e-9, atol=1e-12)
        # NC1/ÑC1 are invariant to scaling the features (layer 0 is 3 h)
        torch.testing.assert_close(out["layer_00/nc1"], out["layer_01/nc1"], rtol=1e-9, atol=0)
    tracker.reset()
    with pytest.warns(UserWarning, match="before the ``update``"):
        assert tracker.compute() == {}


def test_layerwise_unsorted_batch_vector_and_merged_ranks() -> None:
    """Node order inside a batch does not matter; two "ranks" merged (``cat`` states, as
    the DDP gather) hold the graphs of both."""
    graphs = [random_case(n=50, f=3, c=2, seed=40 + i)[:2] for i in range(3)]
    h = torch.cat([g[0] for g in graphs])
    y = torch.cat([g[1] for g in graphs])
    batch = torch.arange(3).repeat_interleave(50)
    perm = torch.randperm(150, generator=torch.Generator().manual_seed(3))
    a, b, whole = (LayerwiseCollapse(2, 3, 1) for _ in range(3))
    a.update([h], y, batch)
    b.update([h[perm]], y[perm], batch[perm])
    torch.testing.assert_close(a.compute()["layer_00/nc1"], b.compute()["layer_00/nc1"])
    whole.update([h], y, batch)
    first, second = LayerwiseCollapse(2, 3, 1), LayerwiseCollapse(2, 3, 1)
    first.update([h[:100]], y[:100], batch[:100])
    second.update([h[100:]], y[100:], batch[100:] - 2)
    first.merge_state(second)
    merged = first.compute()["layer_00/nc1"]
    torch.testing.assert_close(merged.sort().values, whole.compute()["layer_00/nc1"].sort().values)
    assert all(fx.__name__ == "dim_zero_cat" for fx in whole._reductions.values())


def test_nc_statistics_log_scale_for_nc1_and_mean_for_bounded_keys() -> None:
    values = torch.tensor([0.01, 0.1, 1.0, 10.0, 1000.0], dtype=torch.float64)
    stats = nc_statistics("nc_h/layer_03/nc1", "nc1")
    assert list(stats) == [f"nc_h/layer_03/nc1_{s}" for s in ("log10_mean", "log10_std", "median")]
    est = bootstrap({"nc_h/layer_03/nc1": values}, stats)
    logs = values.log10()
    assert est["nc_h/layer_03/nc1_log10_mean"].value == pytest.approx(float(logs.mean()))
    assert est["nc_h/layer_03/nc1_log10_std"].value == pytest.approx(float(logs.std(correction=0)))
    assert est["nc_h/layer_03/nc1_median"].value == pytest.approx(1.0)
    assert float(values.mean()) > 200  # the arithmetic mean is one graph's value / 5
    for key in ("nc2", "nc3", "nc4"):
        (name,) = nc_statistics(f"x/{key}", key)
        assert name == f"x/{key}"
        est = bootstrap({name: values}, nc_statistics(name, key))
        assert est[name].value == pytest.approx(float(values.mean()))


def test_summary_table_formats_intervals_and_skips_missing_rows() -> None:
    metrics = {"a": 1.5, "a_ci": [1.0, 2.0], "a_n": 7, "b": 3.0}
    lines = summary_table("T", ["i", "x", "y"], {0: ["a", "b"], 1: ["c", "d"]}, metrics)
    assert lines == [
        "### T",
        "",
        "| i | x | y |",
        "|---|---|---|",
        "| 0 | 1.5 [1, 2], n = 7 | 3 |",
        "",
    ]
    assert summary_table("T", ["i", "x"], {0: ["c"]}, metrics) == []


def test_best_permutation_and_overlap() -> None:
    y = torch.tensor([0, 0, 1, 1, 2, 2, 0, 1, 2, 2])
    pred = torch.tensor([1, 1, 2, 2, 0, 0, 1, 2, 0, 1])  # y + 1 mod 3, one mistake
    perm, correct = best_permutation(pred, y, 3)
    assert perm.tolist() == [[1, 2, 0]] and correct.tolist() == [9]
    assert overlap(pred, y, 3).item() == pytest.approx((0.9 - 1 / 3) / (2 / 3))
    assert align_labels(pred, y, 3).tolist() == ((y + 1) % 3).tolist()
    batch = torch.tensor([0] * 5 + [1] * 5)  # per graph, different permutations allowed
    ov = overlap(torch.cat([y[:5], pred[5:]]), y, 3, batch)
    assert ov[0].item() == pytest.approx(1.0)
    assert ov[1].item() == pytest.approx((0.8 - 1 / 3) / (2 / 3))


def test_align_makes_nc3_nc4_permutation_invariant() -> None:
    h, y, w = random_case(n=300, f=4, c=3, seed=9, sep=3.0)
    base = nc_metrics(h.double(), y, w.double(), align=True)
    swapped = nc_metrics(h.double(), torch.tensor([1, 2, 0])[y], w.double(), align=True)
    assert swapped == pytest.approx(base, rel=1e-10)
    assert nc_metrics(h.double(), torch.tensor([1, 2, 0])[y], w.double())["nc3"] > base["nc3"]


def test_clear_errors() -> None:
    h, y, w = random_case(n=30, f=3, c=3)
    with pytest.raises(ValueError, match=r"\(N, F\)"):
        nc_metrics(h[0], y)
    with pytest.raises(ValueError, match="labels must be"):
        nc_metrics(h, y[:-1])
    with pytest.raises(ValueError, match="classifier_weight must be"):
        nc_metrics(h, y, w[:, :2])
    with pytest.raises(ValueError, match="align=True needs"):
        nc_metrics(h, y, align=True)
    with pytest.raises(ValueError, match="expected 3 features"):
        CollapseMetric(3, 3).update(h[:, :2], y)
    with pytest.raises(ValueError, match=r"labels must lie"):
        CollapseMetric(2, 3).update(h, y)
    with pytest.raises(ValueError, match="not supported"):
        best_permutation(y, y, 9)
    with pytest.raises(ValueError, match="expected 2 feature tensors"):
        LayerwiseCollapse(3, 3, 2).update([h], y)
    with pytest.raises(ValueError, match="expected 4 features"):
        LayerwiseCollapse(3, 4, 1).update([h], y)
    with pytest.raises(ValueError, match="num_layers"):
        LayerwiseCollapse(3, 4, 0)


# -- plot callback ------------------------------------------------------------------------
def test_parse_nc_metrics() -> None:
    """log₁₀ values: the logged log-scale mean as is, a raw value through log₁₀."""
    logged = {
        "val/nc_h/layer_00/nc1_log10_mean": torch.tensor(0.5),
        "val/nc_h/layer_01/nc1_log10_mean": -1.0,
        "val/nc_h/layer_01/nc1_median": 7.0,
        "val/nc_h/layer_01/nc1": 1e5,  # the log-scale mean wins
        "val/nc_h/layer_01/nc2": 0.01,
        "train/nc_h/last/nc1": 1000.0,
        "test/nc/iter_016/nc1_log10_mean": -2.0,
        "test/nc/iter_016/nc1_log10_mean_ci_lo": -2.5,
        "val/overlap": 0.9,
    }
    assert parse_nc_metrics(logged) == {
        "val/nc_h": {0: 0.5, 1: -1.0},
        "train/nc_h": {"last": pytest.approx(3.0)},
        "test/nc": {16: -2.0},
    }
    assert parse_nc_metrics(logged, "nc2") == {"val/nc_h": {1: pytest.approx(-2.0)}}
    assert math.isnan(parse_nc_metrics({"val/nc_h/layer_00/nc2": 0.0}, "nc2")["val/nc_h"][0])


class _FakeNC(pl.LightningModule):
    """Logs NC1 like the graph models, shrinking with the epoch: 10^-(epoch + layer) (val:
    its log₁₀ as the mean over graphs; train: the pooled value)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch, batch_idx):
        return (self.w - batch[0].mean()) ** 2

    def validation_step(self, batch, batch_idx):
        pass

    def on_validation_epoch_end(self) -> None:
        e = self.current_epoch
        self.log_dict({f"val/nc_h/layer_{l:02d}/nc1_log10_mean": -(e + l) for l in range(3)})

    def on_train_epoch_end(self) -> None:
        self.log("train/nc_h/last/nc1", 10.0**-self.current_epoch)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_plot_callback_collects_every_epoch_and_writes_pngs(tmp_path) -> None:
    data = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.randn(4, 1)), batch_size=2
    )
    cb = CollapsePlotCallback(every_n_epochs=2)
    trainer = pl.Trainer(
        max_epochs=3, accelerator="cpu", logger=False, default_root_dir=tmp_path, callbacks=[cb],
        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
        num_sanity_val_steps=0,
    )  # fmt: skip
    trainer.fit(_FakeNC(), train_dataloaders=data, val_dataloaders=data)
    assert [e for e, _ in cb.history] == [0, 1, 2]
    for epoch, parsed in cb.history:  # each epoch's own log10 values, not the previous ones
        assert parsed["train/nc_h"]["last"] == pytest.approx(-epoch)
        assert parsed["val/nc_h"][2] == pytest.approx(-(epoch + 2))
    assert (tmp_path / "figures" / "nc1_vs_layer.png").is_file()
    assert (tmp_path / "figures" / "nc1_vs_epoch.png").is_file()
    assert len(cb.paths) == 4  # drawn after epoch 1 (every 2) and at the end of training


def test_crossing_depth_matches_a_numpy_reference() -> None:
    """First crossing of ``level`` by the mean over graphs of log₁₀, interpolated, for every
    resample, against a loop over layers; L + 1 when the curve never gets below."""
    rng = np.random.default_rng(0)
    g, layers = 40, 9
    # per-graph values falling by ~0.5 decades per layer with graph-to-graph spread
    logs = 2.0 - 0.5 * np.arange(layers)[None, :] + 0.4 * rng.standard_normal((g, layers))
    cols = {f"l{ell}": torch.tensor(10.0 ** logs[:, ell]) for ell in range(layers)}
    stat = crossing_depth([f"l{ell}" for ell in range(layers)], -1.0)
    w = torch.tensor(rng.dirichlet(np.ones(g), size=5))  # five weightings of the graphs

    def reference(weights: np.ndarray) -> float:
        m = weights @ logs
        for k in range(layers):
            if m[k] < -1.0:
                return 0.0 if k == 0 else k - 1 + (m[k - 1] + 1.0) / (m[k - 1] - m[k])
        return float(layers)

    got = stat(w, cols)
    want = [reference(row) for row in w.numpy()]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    assert 5.0 < float(stat(torch.full((1, g), 1.0 / g, dtype=torch.float64), cols)) < 7.0
    never = crossing_depth([f"l{ell}" for ell in range(layers)], -10.0)
    assert float(never(w[:1], cols)[0]) == layers  # censored one past the last layer
    first = crossing_depth(["l0"], 5.0)  # already below at layer 0
    assert float(first(w[:1], cols)[0]) == 0.0
    est = bootstrap(cols, {"d": stat})["d"]
    assert est.lo < est.value < est.hi and est.hi - est.lo < 1.0
