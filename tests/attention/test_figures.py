"""The attention figures run end to end at toy sizes and their helpers measure what they claim."""

from __future__ import annotations

from pathlib import Path

import torch

import zoo
from zoo.attention.figures import rf_attention_risk, ridge_risk_curve, train_lowrank
from zoo.core.figures import list_figures, run_figure


def test_figures_registered() -> None:
    assert {"rf_attention_risk", "lowrank_attention_rank"} <= set(list_figures())


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
    paths = run_figure(
        "lowrank_attention_rank",
        tmp_path,
        dim=8,
        n_keys=4,
        ranks=[2, 8],
        fixed_rank=2,
        head_counts=[1, 4],
        steps=20,
        batch_size=64,
    )
    assert [p.suffix for p in paths] == [".png", ".pdf"] and paths[0].is_file()
