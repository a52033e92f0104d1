"""The attention figures run end to end at toy sizes and their helpers measure what they claim."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch
import yaml

import zoo
from zoo.attention import figures
from zoo.attention.figures import (
    checkpoint_error,
    lowrank_attention_rank,
    rank_transformer,
    rf_attention_risk,
    ridge_risk_curve,
    train_lowrank,
    train_rank_transformer,
)
from zoo.core.figures import list_figures, run_figure

CONFIGS = Path(__file__).resolve().parents[2] / "recipes" / "configs" / "fig"


def test_figures_registered() -> None:
    assert {"rf_attention_risk", "lowrank_attention_rank", "rank_transformer"} <= set(
        list_figures()
    )


@pytest.mark.parametrize(
    "name", ["rf_attention_risk", "lowrank_attention_rank", "rank_transformer"]
)
def test_figure_defaults_average_three_seeds(name: str) -> None:
    """The signature and the recipe agree on every parameter, and both use >= 3 seeds."""
    config = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
    params = inspect.signature(getattr(figures, name)).parameters
    assert len(params["seeds"].default) >= 3
    assert config.pop("name") == name
    for key, value in config.items():
        default = params[key].default
        want = list(default) if isinstance(default, tuple) else default
        assert value == want or (default is None and value), key


def test_ridge_risk_curve_selects_lambda_on_validation() -> None:
    """With n ≥ P and λ → 0 the fit interpolates a target that is *in* the feature span."""
    data = zoo.create_datamodule(
        "rf_attention",
        dim=4,
        n_set=4,
        n_train=400,
        n_val=200,
        n_test=200,
        target="key_power",
        target_params={"p": 1},
    )
    model = zoo.create("rf_attention", dim=4, heads=8, value_bias=False)
    # plant the labels: y = Φ(x) v* for a fixed v*, for every split
    v = torch.randn(model.num_features, 1, generator=torch.Generator().manual_seed(0))
    for s in ("train", "val", "test"):
        xs, _ = data.split(s)
        data._splits[s] = (xs, (model.batched_features(xs) @ v)[:, 0])
    risks = ridge_risk_curve(model, data, [400], [1e-8, 10.0])
    assert risks[0] < 1e-6  # λ = 1e-8 wins on validation and is exact
    assert ridge_risk_curve(model, data, [400], [10.0])[0] > 0.1  # over-regularised


def test_rf_attention_risk_runs(tmp_path: Path) -> None:
    params = {
        "dim": 4,
        "n_set": 4,
        "heads": 8,
        "targets": [{"name": "key_exp", "beta": 1.0}],
        "sample_sizes": [50, 400],
        "n_eval": 200,
    }
    paths = run_figure("rf_attention_risk", tmp_path, **params)
    assert [p.name for p in paths] == ["rf_attention_risk.png", "rf_attention_risk.pdf"]
    assert all(p.stat().st_size > 0 for p in paths)
    fig = rf_attention_risk(**params, seeds=(0, 1))
    zero_mean, non_zero_mean, mlp = (line.get_ydata()[-1] for line in fig.axes[0].lines[:3])
    # on the exponential key target the non-zero-mean W wins by far (measured 0.15 vs 1.15, 0.94)
    assert non_zero_mean < 0.3 < min(zero_mean, mlp)
    assert len(fig.axes[0].collections) == 3  # a min–max band over the seeds for each model


def test_train_lowrank_learns_something() -> None:
    err = train_lowrank(
        dim=8,
        n_keys=4,
        heads=1,
        rank=None,
        steps=150,
        batch_size=128,
        lr=1e-2,
        temperature=16.0,
        n_test=512,
    )
    assert err < 0.6  # predicting 0 scores 1


def test_lowrank_attention_rank_runs(tmp_path: Path) -> None:
    params = {"dim": 8, "n_keys": 4, "ranks": [2, 8], "fixed_rank": 2, "head_counts": [1, 4]}
    params |= {"steps": 20, "batch_size": 64, "n_test": 256, "checkpoint": None}
    paths = run_figure("lowrank_attention_rank", tmp_path, **params, seeds=[0])
    assert [p.suffix for p in paths] == [".png", ".pdf"] and paths[0].is_file()
    fig = lowrank_attention_rank(**params, seeds=(0, 1))
    assert [len(ax.collections) for ax in fig.axes] == [1, 1]  # min–max bands over seeds


def test_lowrank_attention_rank_trains_each_setting_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both panels share the H = d/r run at ``fixed_rank``; lines are the mean over seeds."""
    calls = []

    def fake(*, heads: int, rank: int, seed: int, **kw: object) -> float:
        calls.append((heads, rank, seed))
        return rank + heads / 100 + seed

    monkeypatch.setattr(figures, "train_lowrank", fake)
    fig = lowrank_attention_rank(
        dim=8, ranks=[2, 8], fixed_rank=2, head_counts=[1, 4], checkpoint=None, seeds=(0, 1, 2)
    )
    settings = [(4, 2), (1, 8), (1, 2)]  # (H, r): (4, 2) is in both panels
    assert sorted(calls) == sorted((h, r, s) for h, r in settings for s in (0, 1, 2))
    by_rank, by_heads = (ax.lines[0].get_ydata() for ax in fig.axes)
    assert list(by_rank) == pytest.approx([2.04 + 1, 8.01 + 1])
    assert list(by_heads) == pytest.approx([2.01 + 1, 2.04 + 1])


def test_checkpoint_error_is_the_shipped_checkpoints_estimate() -> None:
    ref = checkpoint_error("lowrank_attention", dim=64, n_keys=16, temperature=256.0, n_test=512)
    assert ref is not None and ref.n == 512
    assert ref.lo <= ref.value <= ref.hi and ref.value < 0.1  # predicting 0 scores 1
    assert (
        checkpoint_error("lowrank_attention", dim=8, n_keys=16, temperature=256.0, n_test=8) is None
    )


def test_train_rank_transformer_learns_something() -> None:
    err = train_rank_transformer(
        dim=8, n_points=6, heads=1, rank=8, steps=150, batch_size=64, lr=3e-2, n_test=512
    )
    assert err < 0.9  # predicting 0 scores 1, the untrained layer ≈ 1.3


def test_rank_transformer_figure_runs(tmp_path: Path) -> None:
    params = {"dim": 4, "n_points": 4, "ranks": [1, 4], "budgets": [2.0, 3.0], "depths": [1, 2]}
    params |= {"steps": 5, "batch_size": 32, "n_test": 64}
    paths = run_figure("rank_transformer", tmp_path, **params, seeds=[0])
    assert [p.suffix for p in paths] == [".png", ".pdf"] and paths[0].is_file()
    with pytest.raises(ValueError, match="need r <= dim"):
        rank_transformer(dim=4, ranks=[3], budgets=[2.0], seeds=(0,))


def test_rank_transformer_figure_budgets_and_shared_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Budget d^e means H·r = d^(e−1); the one-layer d² runs serve both panels."""
    calls = []

    def fake(*, heads: int, rank: int, layers: int, seed: int, **kw: object) -> float:
        calls.append((heads, rank, layers, seed))
        return heads * rank + layers / 10 + seed

    monkeypatch.setattr(figures, "train_rank_transformer", fake)
    fig = rank_transformer(dim=4, ranks=[1, 4], budgets=[2.0, 3.0], depths=[1, 3], seeds=(0, 1, 2))
    settings = [(4, 1, 1), (1, 4, 1), (16, 1, 1), (4, 4, 1), (4, 1, 3), (1, 4, 3)]
    assert sorted(calls) == sorted((*st, s) for st in settings for s in (0, 1, 2))
    d2, d3 = (line.get_ydata() for line in fig.axes[0].lines[:2])
    assert list(d2) == pytest.approx([4.1 + 1, 4.1 + 1]) and list(d3) == pytest.approx([17.1, 17.1])
    assert len(fig.axes[1].collections) == 2  # a band per depth
