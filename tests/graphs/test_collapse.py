"""NC1–NC4: exact references, collapse limits, streaming, invariances, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from zoo.graphs.callbacks import CollapsePlotCallback, parse_nc_metrics
from zoo.graphs.collapse import (
    CollapseMetric,
    LayerwiseCollapse,
    align_labels,
    best_permutation,
    nc_metrics,
    overlap,
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
    metric = CollapseMetric(3, 5, per_graph=False)
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
    whole, a, b = (CollapseMetric(3, 4, per_graph=False) for _ in range(3))
    whole.update(h, y)
    a.update(h[:120], y[:120])
    b.update(h[120:], y[120:])
    a.merge_state(b)
    for k, v in whole.compute().items():
        assert float(a.compute()[k]) == pytest.approx(float(v), rel=1e-10)
    assert all(fx.__name__ == "dim_zero_sum" for fx in whole._reductions.values())


def test_per_graph_mode_averages_graph_values_and_is_batching_invariant() -> None:
    graphs = [random_case(n=60 + 6 * i, f=3, c=2, seed=20 + i) for i in range(5)]
    w = graphs[0][2]
    per = [nc_metrics(h.double(), y, w.double()) for h, y, _ in graphs]
    h = torch.cat([g[0] for g in graphs])
    y = torch.cat([g[1] for g in graphs])
    batch = torch.cat([torch.full((len(g[1]),), i) for i, g in enumerate(graphs)])
    one, two = CollapseMetric(2, 3), CollapseMetric(2, 3)
    one.update(h, y, batch, classifier_weight=w)
    for hi, yi, _ in graphs:  # one graph per update
        two.update(hi, yi, classifier_weight=w)
    for k in ("nc1", "nc1_tilde", "nc2", "nc3", "nc4"):
        ref = float(np.mean([p[k] for p in per]))
        assert float(one.compute()[k]) == pytest.approx(ref, rel=1e-9), k
        assert float(two.compute()[k]) == pytest.approx(ref, rel=1e-9), k


def test_unsorted_batch_vector() -> None:
    graphs = [random_case(n=50, f=3, c=2, seed=40 + i)[:2] for i in range(3)]
    h = torch.cat([g[0] for g in graphs])
    y = torch.cat([g[1] for g in graphs])
    batch = torch.arange(3).repeat_interleave(50)
    perm = torch.randperm(150, generator=torch.Generator().manual_seed(3))
    a, b = CollapseMetric(2, 3), CollapseMetric(2, 3)
    a.update(h, y, batch)
    b.update(h[perm], y[perm], batch[perm])
    assert float(a.compute()["nc1"]) == pytest.approx(float(b.compute()["nc1"]), rel=1e-10)


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


def test_layerwise_collapse_keys_and_values() -> None:
    h, y, w = random_case(n=120, f=4, c=2, seed=2)
    h = h.double()
    tracker = LayerwiseCollapse(2, [4, 4, 4])
    tracker.update([h, 2 * h, h + 1], y, classifier_weight=w)
    out = tracker.compute()
    assert "layer_00/nc1" in out and "layer_02/nc4" in out and "layer_00/nc3" not in out
    # NC1 is invariant to scaling and translation of the features
    assert float(out["layer_01/nc1"]) == pytest.approx(float(out["layer_00/nc1"]), rel=1e-9)
    assert float(out["layer_02/nc1"]) == pytest.approx(float(out["layer_00/nc1"]), rel=1e-9)
    tracker.reset()
    assert float(tracker.layers[0].num_graphs) == 0


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


# -- plot callback ------------------------------------------------------------------------
def test_parse_nc_metrics() -> None:
    logged = {
        "val/nc_h/layer_00/nc1": torch.tensor(5.0),
        "val/nc_h/layer_01/nc1": 2.0,
        "val/nc_h/layer_01/nc2": 9.0,
        "train/nc_h/last/nc1": 3.0,
        "test/nc/iter_016/nc1": 0.5,
        "val/overlap": 0.9,
    }
    assert parse_nc_metrics(logged) == {
        "val/nc_h": {0: 5.0, 1: 2.0},
        "train/nc_h": {"last": 3.0},
        "test/nc": {16: 0.5},
    }
    assert parse_nc_metrics(logged, "nc2") == {"val/nc_h": {1: 9.0}}


class _FakeNC(pl.LightningModule):
    """Logs NC1 like the graph models, shrinking with the epoch: 10^-(epoch + layer)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch, batch_idx):
        return (self.w - batch[0].mean()) ** 2

    def validation_step(self, batch, batch_idx):
        pass

    def on_validation_epoch_end(self) -> None:
        e = self.current_epoch
        self.log_dict({f"val/nc_h/layer_{l:02d}/nc1": 10.0 ** -(e + l) for l in range(3)})

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
    for epoch, parsed in cb.history:  # each epoch's own values, not the previous ones
        assert parsed["train/nc_h"]["last"] == pytest.approx(10.0**-epoch)
        assert parsed["val/nc_h"][2] == pytest.approx(10.0 ** -(epoch + 2))
    assert (tmp_path / "figures" / "nc1_vs_layer.png").is_file()
    assert (tmp_path / "figures" / "nc1_vs_epoch.png").is_file()
    assert len(cb.paths) == 4  # drawn after epoch 1 (every 2) and at the end of training
