"""The hierarchical figures run at toy sizes and plot numbers that mean what they claim."""

from __future__ import annotations

from pathlib import Path

import pytest

from zoo.core.figures import list_figures, run_figure
from zoo.hierarchical.figures import (
    convnet_bp_acc,
    rhm_sample_complexity,
    unet_bp_mse,
    unet_bp_samples,
)


def _ys(fig: object, ax: int = 0) -> list[list[float]]:
    return [list(map(float, line.get_ydata())) for line in fig.axes[ax].lines]


def test_figures_registered() -> None:
    assert {"convnet_bp_acc", "unet_bp_samples", "unet_bp_mse", "rhm_sample_complexity"} <= set(
        list_figures()
    )


def test_sample_complexity_error_falls_past_p_star() -> None:
    fig = rhm_sample_complexity(
        grammars=((8, 2, 3),), ratios=(0.25, 8), steps=150, n_test=256, seeds=(0,)
    )
    err = _ys(fig)[0]  # n = 16 and 512 (P* = 8 · 2³ = 64)
    assert err[1] < 0.5 * err[0]  # measured 0.71 → 0.0
    assert list(fig.axes[0].lines[0].get_xdata()) == [16, 512]
    assert 64 in [line.get_xdata()[0] for line in fig.axes[0].lines[1:]]  # P* marked


def test_convnet_learns_the_root_far_above_chance(tmp_path: Path) -> None:
    fig = convnet_bp_acc(n_trains=(512,), depth=3, width=32, steps=100, n_test=512, seeds=(0,))
    acc, bayes = _ys(fig)[:2]
    assert acc[0] > 0.4  # chance is 1/8; measured 0.68
    assert bayes[0] == 1.0  # the RHM is unambiguous: BP always recovers the root
    paths = run_figure("convnet_bp_acc", tmp_path, n_trains=[32], depth=2, steps=2, seeds=[0, 1])
    assert [p.name for p in paths] == ["convnet_bp_acc.png", "convnet_bp_acc.pdf"]


@pytest.mark.slow  # CI keeps the faster end-to-end check of this file
def test_long_skips_beat_the_same_size_cnn(tmp_path: Path) -> None:
    fig = unet_bp_samples(n_trains=(256,), depth=3, width=16, steps=100, n_test=256, seeds=(0,))
    unet, cnn = (y[0] for y in _ys(fig)[:2])
    assert 1.0 < unet < cnn  # MSE / Bayes MSE; measured 1.34 < 1.46
    paths = run_figure("unet_bp_samples", tmp_path, n_trains=[16], depth=2, width=8, steps=2)
    assert paths[0].name == "unet_bp_samples.png" and paths[0].stat().st_size > 10_000


def test_sigma_checkpoint_is_near_bayes_at_large_noise() -> None:
    fig = unet_bp_mse(sigmas=(1.0, 3.0), n_test=256, seeds=(1, 2))
    ratio = _ys(fig, 1)[0]  # model MSE / Bayes MSE, mean over the two seeds
    assert 0.95 < ratio[1] < ratio[0] < 1.2  # measured 1.07 (σ = 1), 1.01 (σ = 3)
    assert len(fig.axes[1].collections) == 1  # the min–max band over seeds
