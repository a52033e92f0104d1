"""gnn_nc / gcn_nc: loss and overlap definitions, exact convs, symmetry, learning, errors."""

from __future__ import annotations

import itertools
import logging
import warnings
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch_geometric.data import Batch, Data
from torch_geometric.nn import GCNConv, SAGEConv

import zoo
from zoo.core.evaluation import fold
from zoo.graphs.collapse import nc_metrics, overlap
from zoo.graphs.data import sample_sbm
from zoo.graphs.models import (
    label_permutations,
    nc_log_key,
    permutation_invariant_mse,
    propagation_matrix,
)

MODELS = ["gnn_nc", "gcn_nc"]


@pytest.fixture(autouse=True)
def _quiet() -> None:
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)


def graph(n: int = 60, c: int = 3, seed: int = 0, feature_dim: int = 8) -> Data:
    g = torch.Generator().manual_seed(seed)
    sizes = [n // c] * c
    probs = [[0.3 if r == s else 0.05 for s in range(c)] for r in range(c)]
    ei = sample_sbm(sizes, probs, generator=g)
    x = torch.randn(n, feature_dim, generator=g)
    y = torch.arange(c).repeat_interleave(n // c)
    return Data(x=x, edge_index=ei, y=y, num_nodes=n)


# -- loss and overlap ---------------------------------------------------------------------
def brute_force_loss(out: torch.Tensor, y: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
    c = out.shape[1]
    per_graph = []
    for g in batch.unique():
        o, t = out[batch == g], y[batch == g]
        losses = [
            F.mse_loss(o, F.one_hot(torch.tensor(perm)[t], c).float())
            for perm in itertools.permutations(range(c))
        ]
        per_graph.append(torch.stack(losses).min())
    return torch.stack(per_graph).mean()


@pytest.mark.parametrize("c", [2, 3, 4])
def test_loss_equals_brute_force_min_over_permutations(c: int) -> None:
    torch.manual_seed(c)
    out = torch.randn(50, c)
    y = torch.randint(0, c, (50,))
    batch = torch.arange(3).repeat_interleave(torch.tensor([20, 17, 13]))
    torch.testing.assert_close(
        permutation_invariant_mse(out, y, batch), brute_force_loss(out, y, batch)
    )
    one = permutation_invariant_mse(out[:20], y[:20])
    torch.testing.assert_close(one, brute_force_loss(out[:20], y[:20], batch[:20]))


def test_loss_is_invariant_under_relabelling_and_zero_at_a_relabelled_fit() -> None:
    torch.manual_seed(0)
    out, y = torch.randn(40, 3), torch.randint(0, 3, (40,))
    sigma = torch.tensor([2, 0, 1])
    torch.testing.assert_close(
        permutation_invariant_mse(out, y), permutation_invariant_mse(out, sigma[y])
    )
    fit = F.one_hot(sigma[y], 3).float()
    assert permutation_invariant_mse(fit, y).item() == 0.0
    assert F.mse_loss(fit, F.one_hot(y, 3).float()).item() > 0.1  # plain MSE is not invariant


def test_loss_gradient_flows_through_the_best_permutation_only() -> None:
    out = torch.tensor([[0.9, 0.1], [0.2, 0.8]], requires_grad=True)
    y = torch.tensor([1, 0])  # best permutation swaps the labels
    permutation_invariant_mse(out, y).backward()
    expected = 2 * (out.detach() - torch.eye(2)) / 4  # d/d out of mean((out − e_π(y))²)
    torch.testing.assert_close(out.grad, expected)


def test_overlap_known_values_and_range() -> None:
    y = torch.arange(4).repeat_interleave(25)  # C = 4, balanced
    assert overlap(y, y, 4).item() == pytest.approx(1.0)
    sigma = torch.tensor([3, 1, 0, 2])
    assert overlap(sigma[y], y, 4).item() == pytest.approx(1.0)  # relabelled perfect
    assert overlap(torch.zeros_like(y), y, 4).item() == pytest.approx(0.0)  # acc = 1/C
    half = y.clone()
    half[y >= 2] = 0  # classes 2, 3 predicted as 0: best acc = 1/2
    assert overlap(half, y, 4).item() == pytest.approx((0.5 - 0.25) / 0.75)
    # Without maximisation (identity labelling) overlap spans [−1/(C−1), 1]; the
    # permutation maximum is ≥ chance, so the reported overlap lies in [0, 1].
    wrong = (y + 1) % 4
    acc = (wrong == y).float().mean()
    assert ((acc - 0.25) / 0.75).item() == pytest.approx(-1 / 3)
    torch.manual_seed(0)
    rand = overlap(torch.randint(0, 4, (100 * 50,)), y.repeat(50), 4, None)
    assert 0.0 <= rand.item() < 0.05


def test_label_permutations() -> None:
    assert label_permutations(3).shape == (6, 3)
    with pytest.raises(ValueError, match="n_classes"):
        label_permutations(7)


# -- architecture -------------------------------------------------------------------------
def test_mean_conv_matches_pyg_sageconv_and_gcn_matches_gcnconv() -> None:
    torch.manual_seed(0)
    d = graph()
    m = zoo.create("gnn_nc", depth=2)
    h = torch.randn(d.num_nodes, 8)
    ctx = m.graph_context(d.edge_index, d.num_nodes)
    for conv in m.convs:
        ref = conv(h, d.edge_index)  # SAGEConv.forward (scatter-mean propagate)
        torch.testing.assert_close(m.conv(conv, h, ctx)[0], ref, atol=1e-5, rtol=1e-5)
    g = zoo.create("gcn_nc", depth=2)
    ctx = g.graph_context(d.edge_index, d.num_nodes)
    ref_conv = GCNConv(8, 8, bias=False)  # normalises with self-loops itself
    ref_conv.lin.weight.data.copy_(g.convs[0].lin.weight)
    out, _ = g.conv(g.convs[0], h, ctx)
    torch.testing.assert_close(out, ref_conv(h, d.edge_index), atol=1e-5, rtol=1e-5)
    # ÂH of the mean aggregation is the neighbour average
    ah_mean = m.conv(m.convs[0], h, m.graph_context(d.edge_index, d.num_nodes))[1]
    i = int(d.edge_index[1, 0])
    nbrs = d.edge_index[0, d.edge_index[1] == i]
    torch.testing.assert_close(ah_mean[i], h[nbrs].mean(0))
    assert isinstance(m.convs[0], SAGEConv) and isinstance(g.convs[0], GCNConv)


@pytest.mark.parametrize("kind", ["mean", "gcn"])
def test_sparse_aggregation_backward_equals_dense_autograd(kind: str) -> None:
    d = graph(n=30)
    a, a_t = propagation_matrix(d.edge_index, 30, kind)
    dense = a.to_dense()
    torch.testing.assert_close(a_t.to_dense(), dense.T)
    h = torch.randn(30, 4, requires_grad=True)
    w = torch.randn(30, 4)
    from zoo.graphs.models import aggregate

    (aggregate({"a": a, "a_t": a_t}, h) * w).sum().backward()
    g1 = h.grad.clone()
    h.grad = None
    ((dense @ h) * w).sum().backward()
    torch.testing.assert_close(g1, h.grad)


@pytest.mark.parametrize("name", MODELS)
def test_node_permutation_equivariance_and_features(name: str) -> None:
    torch.manual_seed(0)
    m = zoo.create(name, depth=3, n_classes=3).eval()
    d = graph()
    perm = torch.randperm(d.num_nodes)
    inv = torch.argsort(perm)
    d2 = Data(x=d.x[perm], edge_index=inv[d.edge_index], y=d.y[perm], num_nodes=d.num_nodes)
    with torch.no_grad():
        out, feats = m(d, return_features=True)
        out2 = m(d2)
    torch.testing.assert_close(out2, out[perm], atol=1e-5, rtol=1e-4)
    assert out.shape == (60, 3)
    assert len(feats["h"]) == len(feats["ah"]) == 4
    assert all(f.shape == (60, 8) for f in feats["h"] + feats["ah"])


@pytest.mark.parametrize("norm", ["batch", "instance", "none"])
def test_norm_options_and_batch_statistics_in_eval(norm: str) -> None:
    m = zoo.create("gnn_nc", depth=2, norm=norm, self_weight=False)
    d = graph(c=2)
    with torch.no_grad():
        train_out = m.train()(d)
        eval_out = m.eval()(d)
    torch.testing.assert_close(train_out, eval_out)  # no running statistics anywhere
    assert m.classifier_weights()["h"] is None  # no self weight


def test_forward_rejects_mismatched_features() -> None:
    m = zoo.create("gnn_nc", depth=1)
    with pytest.raises(ValueError, match="feature_dim"):
        m(graph(feature_dim=5))


@pytest.mark.parametrize(
    ("key", "value"),
    [("depth", -1), ("width", 0), ("n_classes", 7), ("norm", "layer"), ("lr", 0.0)],
)
def test_invalid_hyper_parameters_name_the_key(key: str, value: object) -> None:
    with pytest.raises(ValueError, match=key):
        zoo.create("gnn_nc", **{key: value})


def test_registry_defaults_are_the_paper_configuration() -> None:
    hp = dict(zoo.create("gnn_nc").hparams)
    assert hp["depth"] == 32 and hp["width"] == 8 and hp["self_weight"] is True
    assert (hp["optimizer"], hp["lr"], hp["momentum"], hp["weight_decay"]) == (
        "sgd",
        0.004,
        0.9,
        0.0005,
    )
    data = zoo.get_spec("gnn_nc").data_config()
    assert (data["n_nodes"], data["p"], data["q"], data["feature_dim"]) == (1000, 0.025, 0.0017, 8)
    assert sum(p.numel() for p in zoo.create("gnn_nc").parameters() if p.dim() == 1) == 2 * 32 * 8


# -- training -----------------------------------------------------------------------------
def fit_and_test(m: zoo.core.ZooModule, dm: object, tmp: Path, epochs: int) -> dict[str, float]:
    trainer = pl.Trainer(
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=str(tmp),
    )
    trainer.fit(m, dm)
    return {k: float(v) for k, v in trainer.test(m, dm, verbose=False)[0].items()}


def test_gnn_learns_an_easy_sbm_well_above_chance(tmp_path: Path) -> None:
    """24 graphs × 2 epochs (~3 s): overlap ≥ 0.7 vs ≈ 0.2 untrained (chance ≈ 0.06)."""
    pl.seed_everything(0, verbose=False)
    m = zoo.create("gnn_nc", depth=2, lr=0.05)
    dm = zoo.create_datamodule(m, n_nodes=200, p=0.15, q=0.01, n_train=24, n_val=2, n_test=8)
    before = pl.Trainer(logger=False, enable_progress_bar=False, default_root_dir=str(tmp_path))
    base = before.test(m, dm, verbose=False)[0]["test/overlap"]
    res = fit_and_test(m, dm, tmp_path, epochs=2)
    assert base < 0.4
    assert res["test/overlap"] > 0.7
    assert res["test/acc"] == pytest.approx(0.5 + res["test/overlap"] / 2, abs=1e-5)
    # per-layer NC summaries are logged with the documented names, for H and ÂH
    for kind in ("h", "ah"):
        for layer in range(3):
            for suffix in ("log10_mean", "log10_std", "median"):
                assert f"{nc_log_key('test', kind, layer, 'nc1')}_{suffix}" in res
                assert f"{nc_log_key('test', kind, layer, 'nc1_tilde')}_{suffix}" in res
            assert nc_log_key("test", kind, layer, "nc2") in res
            assert nc_log_key("test", kind, layer, "nc1") not in res  # no arithmetic mean
        assert nc_log_key("test", kind, 2, "nc4") in res
    assert nc_log_key("test", "ah", 2, "nc3") in res
    assert nc_log_key("test", "h", 2, "nc3") in res  # self weight W₁ is the H classifier
    card = m.model_card_extra(fold(res))
    assert "| 2 |" in card and "ÂH" in card and ", n = 8 |" in card
    assert "NC2 of the" not in card  # C = 2: NC2 is 0 up to rounding, left out of the card
    assert list((tmp_path / "figures").glob("*nc1_vs_layer.png"))


def test_training_logs_train_collapse_and_no_nc_when_disabled(tmp_path: Path) -> None:
    pl.seed_everything(0, verbose=False)
    m = zoo.create("gcn_nc", depth=1)
    dm = zoo.create_datamodule(m, n_nodes=60, p=0.3, q=0.05, n_train=3, n_val=1, n_test=1)
    trainer = pl.Trainer(
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
    )
    trainer.fit(m, dm)
    logged = trainer.callback_metrics
    assert {"train/loss", "train/overlap", "train/acc", "val/overlap"} <= set(logged)
    assert nc_log_key("train", "h", "last", "nc1") in logged
    assert nc_log_key("val", "ah", 1, "nc1") + "_log10_mean" in logged
    m2 = zoo.create("gcn_nc", depth=1, track_collapse=False)
    assert m2.configure_callbacks() == []
    res = fit_and_test(m2, dm, tmp_path, epochs=1)
    assert not any("/nc_" in k for k in res)


def test_fixed_seed_gives_identical_models_and_outputs() -> None:
    d = graph(c=2)
    torch.manual_seed(3)
    a = zoo.create("gnn_nc", depth=2)
    torch.manual_seed(3)
    b = zoo.create("gnn_nc", depth=2)
    with torch.no_grad():
        torch.testing.assert_close(a(d), b(d), rtol=0, atol=0)
    batch = Batch.from_data_list([d, graph(c=2, seed=1)])
    with torch.no_grad():
        out = a(batch)
    assert out.shape == (120, 2)


# -- evaluation protocol ------------------------------------------------------------------
def small_model(name: str, n_test: int, seed: int = 0) -> tuple[zoo.core.ZooModule, object]:
    """An untrained 2-block model (C = 3, so NC2 is not 0) and 60-node SBM test graphs."""
    pl.seed_everything(seed, verbose=False)
    m = zoo.create(name, depth=2, n_classes=3)
    dm = zoo.create_datamodule(m, n_nodes=60, p=0.3, q=0.05, n_train=1, n_val=1, n_test=n_test)
    return m, dm


def run_test(m: zoo.core.ZooModule, dm: object, tmp: Path) -> dict[str, float]:
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, default_root_dir=str(tmp))
    return {k: float(v) for k, v in trainer.test(m, dm, verbose=False)[0].items()}


def best_accuracy(pred: torch.Tensor, y: torch.Tensor, c: int) -> tuple[float, torch.Tensor]:
    """max over label permutations π of mean(π(y) = pred), and π(y) (brute force)."""
    best = max(
        itertools.permutations(range(c)), key=lambda p: int((torch.tensor(p)[y] == pred).sum())
    )
    aligned = torch.tensor(best)[y]
    return float((aligned == pred).double().mean()), aligned


@pytest.mark.parametrize("name", MODELS)
def test_test_estimates_equal_a_direct_computation_on_the_whole_split(
    name: str, tmp_path: Path
) -> None:
    """Every test metric is the statistic of the per-graph values, computed here graph by
    graph (brute-force loss and permutation, ``nc_metrics`` per graph), with an interval
    that contains it and n = the number of test graphs."""
    c, n = 3, 11
    m, dm = small_model(name, n)
    res = run_test(m, dm, tmp_path)
    graphs = dm.split("test")
    cols: dict[str, list[float]] = {}
    with torch.no_grad():
        m.eval()
        for g in graphs:
            logits, feats = m(g, return_features=True)
            acc, aligned = best_accuracy(logits.argmax(1), g.y, c)
            batch = torch.zeros(len(g.y), dtype=torch.long)
            row = {
                "loss": float(brute_force_loss(logits, g.y, batch)),
                "acc": acc,
                "overlap": (acc - 1 / c) / (1 - 1 / c),
            }
            w = m.classifier_weights()
            for kind in ("h", "ah"):
                for layer, f in enumerate(feats[kind]):
                    cls = w[kind] if layer == 2 and w[kind] is not None else None
                    for key, v in nc_metrics(f.double(), aligned, cls, num_classes=c).items():
                        row[f"nc_{kind}/layer_{layer:02d}/{key}"] = v
            for k, v in row.items():
                cols.setdefault(k, []).append(v)
    expected: dict[str, float] = {}
    for k, vals in cols.items():
        v = torch.tensor(vals, dtype=torch.float64)
        if k.endswith(("/nc1", "/nc1_tilde")):
            logs = v.log10()
            expected[f"{k}_log10_mean"] = float(logs.mean())
            expected[f"{k}_log10_std"] = float(logs.std(correction=0))
            expected[f"{k}_median"] = float(v.median())  # n odd: the middle value
        else:
            expected[k] = float(v.mean())
    assert len(expected) == (3 + 2 * 3 * 7 + (4 if name == "gnn_nc" else 2))
    logged = {k for k in res if not k.endswith(("_ci_lo", "_ci_hi", "_n"))}
    assert logged == {f"test/{k}" for k in expected}
    for k, want in expected.items():
        key = f"test/{k}"
        assert res[key] == pytest.approx(want, rel=1e-5, abs=1e-6), key
        assert res[f"{key}_ci_lo"] <= res[key] <= res[f"{key}_ci_hi"], key
        assert res[f"{key}_n"] == n, key
    assert res["test/nc_h/layer_02/nc2"] > 0.01  # C = 3: a real value, not rounding


@pytest.mark.parametrize("name", MODELS)
def test_intervals_shrink_with_the_number_of_test_graphs(name: str, tmp_path: Path) -> None:
    keys = ["test/loss", "test/overlap", "test/acc", "test/nc_h/layer_01/nc1_log10_mean"]
    widths = {}
    for n in (8, 128):
        m, dm = small_model(name, n, seed=1)
        res = run_test(m, dm, tmp_path)
        widths[n] = {k: res[f"{k}_ci_hi"] - res[f"{k}_ci_lo"] for k in keys}
        assert all(res[f"{k}_n"] == n for k in keys)
    for k in keys:  # ~1/√n: a factor 4 expected
        assert 0 < widths[128][k] < widths[8][k] / 2, (k, widths)


def test_validation_logs_values_only_and_the_monitor(tmp_path: Path) -> None:
    pl.seed_everything(0, verbose=False)
    m = zoo.create("gnn_nc", depth=1)
    dm = zoo.create_datamodule(m, n_nodes=60, p=0.3, q=0.05, n_train=2, n_val=3, n_test=1)
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, default_root_dir=str(tmp_path))
    res = trainer.validate(m, dm, verbose=False)[0]
    assert m.monitor in res and "val/nc_h/layer_01/nc1_log10_mean" in res
    assert not any(k.endswith(("_ci_lo", "_ci_hi", "_n")) for k in res)


# -- the paper's variants -----------------------------------------------------------------
def test_variants_are_the_papers_configurations() -> None:
    """Each registered variant differs from gnn_nc only where the paper's configuration does."""
    base = dict(zoo.create("gnn_nc").hparams)
    want = {
        "gnn_nc_noself": ({"self_weight": False}, {}),
        "gnn_nc_paper": ({}, {"p": 1 - (1 - 0.025) ** 2, "q": 1 - (1 - 0.0017) ** 2}),
        "gnn_nc_paper_noself": (
            {"self_weight": False},
            {"p": 1 - (1 - 0.025) ** 2, "q": 1 - (1 - 0.0017) ** 2},
        ),
        "gnn_nc_c4": (
            {"n_classes": 4, "feature_dim": 16, "width": 16, "lr": 0.006},
            {"p": 0.1, "q": 0.0068, "n_classes": 4, "feature_dim": 16},
        ),
    }
    base_data = zoo.get_spec("gnn_nc").data_config()
    for name, (model_diff, data_diff) in want.items():
        hp = dict(zoo.create(name).hparams)
        changed = {k: v for k, v in hp.items() if base[k] != v}
        assert changed == pytest.approx({**model_diff, "nc1_depth_level": -1.0}), name
        data = zoo.get_spec(name).data_config()
        changed = {k: v for k, v in data.items() if base_data[k] != v}
        assert changed == pytest.approx(data_diff, rel=1e-12), name
    m = zoo.create("gnn_nc_noself", depth=2)
    assert all(not conv.root_weight for conv in m.convs)
    with pytest.raises(ValueError, match="nc1_depth_level"):
        zoo.create("gnn_nc", nc1_depth_level=-1.0, track_collapse=False)


def test_crossing_depth_is_logged_and_equals_the_per_layer_curve(tmp_path: Path) -> None:
    """``test/nc1_depth_{h,ah}`` is the interpolated first crossing of the logged per-layer
    mean log₁₀ NC1 (recomputed here from those logged values)."""
    pl.seed_everything(0, verbose=False)
    m = zoo.create("gnn_nc_noself", depth=6, n_classes=2, nc1_depth_level=0.5)
    dm = zoo.create_datamodule(m, n_nodes=90, p=0.3, q=0.02, n_train=1, n_val=1, n_test=9)
    res = run_test(m, dm, tmp_path)
    crossed = 0
    for kind in ("h", "ah"):
        curve = [res[f"test/nc_{kind}/layer_{ell:02d}/nc1_log10_mean"] for ell in range(7)]
        k = next((i for i, v in enumerate(curve) if v < 0.5), None)
        key = f"test/nc1_depth_{kind}"
        if k is None:
            assert res[key] == 7  # censored: one past the last layer
            continue
        crossed += 1
        want = 0.0 if k == 0 else k - 1 + (curve[k - 1] - 0.5) / (curve[k - 1] - curve[k])
        assert res[key] == pytest.approx(want, rel=1e-5, abs=1e-5)
        assert res[f"{key}_ci_lo"] <= res[key] <= res[f"{key}_ci_hi"] and res[f"{key}_n"] == 9
    assert crossed  # the interpolation was exercised
