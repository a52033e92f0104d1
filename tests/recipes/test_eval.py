"""recipes/eval.py and recipes/reproduce.py: intervals, pooled seeds, card rewrites, W&B."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from omegaconf import open_dict
from safetensors.torch import load_file

import zoo
from zoo.core.checkpoint import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, checkpoints_root
from zoo.core.evaluation import estimates, uncertain_keys
from zoo.core.figures import FIGURES, new_figure, plot_seeds, register_figure

NAME = "spectral_sbm"  # not trained: its evaluation is the cheapest of the shipped models
SMALL = ["data.n_test=6", "data.batch_size=6"]


def test_every_metric_has_an_interval_and_seeds_pool(compose_cfg, tmp_path: Path) -> None:
    from eval import evaluate

    model = zoo.load(NAME)
    one = [
        evaluate(
            compose_cfg("eval", [f"checkpoint={NAME}", f"data.seed={s}", *SMALL], tmp_path), model
        )
        for s in (1, 2)
    ]
    both = evaluate(
        compose_cfg("eval", [f"checkpoint={NAME}", "data.seeds=[1,2]", *SMALL], tmp_path), model
    )
    for metrics in (*one, both):
        assert uncertain_keys(metrics) == [] and estimates(metrics)
    key = "test/overlap"
    assert [m[f"{key}_n"] for m in one] == [6, 6] and both[f"{key}_n"] == 12
    # a mean over graphs: the pooled value is the average of two equal-size seeds
    assert both[key] == pytest.approx((one[0][key] + one[1][key]) / 2)
    lo, hi = both[f"{key}_ci"]
    assert lo <= both[key] <= hi


def test_bad_seed_options_fail_with_one_line(compose_cfg, tmp_path: Path) -> None:
    from eval import evaluate

    model = zoo.load(NAME)
    for bad, match in (
        (["data.seed=1", "data.seeds=[2]"], "not both"),
        (["data.seeds=[]"], "non-empty list"),
        (["data.seeds=[1,1]"], "distinct"),
    ):
        with pytest.raises(ValueError, match=match):
            evaluate(compose_cfg("eval", [f"checkpoint={NAME}", *bad], tmp_path), model)


def test_rewrite_replaces_metrics_and_keeps_weights(compose_cfg, tmp_path: Path) -> None:
    from eval import evaluate, rewrite

    directory = tmp_path / NAME
    shutil.copytree(checkpoints_root() / NAME, directory)
    weights = load_file(directory / WEIGHTS_NAME)
    old = json.loads((directory / CONFIG_NAME).read_text())
    cfg = compose_cfg(
        "eval", [f"checkpoint={directory}", "data.n_test=8", "rewrite=true"], tmp_path
    )
    model = zoo.load(directory)
    metrics = evaluate(cfg, model)
    rewrite(cfg, model, metrics)
    new = json.loads((directory / CONFIG_NAME).read_text())
    kept = load_file(directory / WEIGHTS_NAME)  # (safetensors orders its metadata at random)
    assert kept.keys() == weights.keys() and all(torch.equal(kept[k], weights[k]) for k in kept)
    assert new["metrics"] == metrics and new["metrics"]["test/overlap_n"] == 8
    assert new["data"] == {**old["data"], "n_test": 8} and new["command"] == old["command"]
    assert new["evaluation"]["seeds"] == [old["data"]["seed"]]
    assert "rewrite=true" in new["evaluation"]["command"]
    card = ModelCard.load(directory / CARD_NAME)
    assert {r.metric_name for r in card.data.eval_results} >= {"test/overlap"}
    with pytest.raises(ValueError, match="not a Hub id"):
        rewrite(compose_cfg("eval", ["checkpoint=hf-hub:org/x"], tmp_path), model, metrics)


def test_eval_logs_intervals_to_wandb_offline(compose_cfg, tmp_path: Path) -> None:
    from _common import build_logger, finish_wandb
    from eval import evaluate

    cfg = compose_cfg(
        "eval",
        [f"checkpoint={NAME}", *SMALL, "logger=wandb", f"logger.save_dir={tmp_path}"],
        tmp_path,
    )
    logger = build_logger(cfg)
    metrics = evaluate(cfg, zoo.load(NAME), logger)
    run_dir, summary = finish_wandb(logger, metrics)
    assert run_dir is not None and run_dir.is_dir()  # offline: no API key in tests
    assert summary["test/overlap"] == pytest.approx(metrics["test/overlap"])
    assert list(summary["test/overlap_ci"]) == metrics["test/overlap_ci"]


@pytest.fixture
def toy_figure():
    @register_figure("_toy_eval")
    def toy(*, seeds: tuple[int, ...] = (0, 1, 2)):
        fig, ax = new_figure(figsize=(2, 2))
        plot_seeds(ax, [0, 1], [[0.0, 1.0 + s] for s in seeds])
        return fig

    yield "_toy_eval"
    FIGURES.remove("_toy_eval")


def test_reproduce_logs_pngs_as_wandb_images(compose_cfg, tmp_path: Path, toy_figure: str) -> None:
    from reproduce import reproduce

    cfg = compose_cfg(
        "reproduce",
        ["fig=gnn_nc_depth", "logger=wandb", f"logger.save_dir={tmp_path}", f"out_dir={tmp_path}"],
        tmp_path,
    )
    with open_dict(cfg):
        cfg.fig = {"name": toy_figure, "seeds": [0, 1, 2]}
    paths = reproduce(cfg)
    assert sorted(p.name for p in paths) == [f"{toy_figure}.pdf", f"{toy_figure}.png"]
    media = list((tmp_path / "wandb").rglob("media/images/figures/*.png"))
    assert len(media) == 1 and media[0].stat().st_size > 0


def test_reproduce_passes_the_trainer_accelerator_to_figures_that_take_one(
    compose_cfg, tmp_path: Path
) -> None:
    from reproduce import reproduce

    seen: list[str] = []

    @register_figure("_toy_accel")
    def toy(*, seeds: tuple[int, ...] = (0,), accelerator: str = "gpu"):
        seen.append(accelerator)
        fig, _ = new_figure(figsize=(2, 2))
        return fig

    try:
        cfg = compose_cfg("reproduce", ["fig=gnn_nc_depth", f"out_dir={tmp_path}"], tmp_path)
        with open_dict(cfg):
            cfg.fig = {"name": "_toy_accel", "seeds": [0]}
        reproduce(cfg)
        assert seen == ["cpu"]  # trainer=cpu, the default, not the figure's own default
        gpu = compose_cfg("reproduce", ["fig=gnn_nc_depth", "trainer=gpu"], tmp_path)
        with pytest.raises(ValueError, match="trains on the CPU only"):
            reproduce(gpu)  # gnn_nc_depth takes no accelerator
    finally:
        FIGURES.remove("_toy_accel")


def test_only_evaluation_hparams_can_be_overridden(compose_cfg, tmp_path: Path) -> None:
    from eval import apply_eval_hparams

    model = zoo.load("unet_bp_sigma")
    apply_eval_hparams(
        compose_cfg("eval", ["checkpoint=x", "+model.diffusion_samples=16"], tmp_path), model
    )
    assert model.hparams.diffusion_samples == 16
    with pytest.raises(ValueError, match=r"model.width cannot change.*diffusion_samples"):
        apply_eval_hparams(compose_cfg("eval", ["checkpoint=x", "+model.width=3"], tmp_path), model)
    with pytest.raises(ValueError, match="diffusion_samples"):
        apply_eval_hparams(
            compose_cfg("eval", ["checkpoint=x", "+model.diffusion_samples=-1"], tmp_path), model
        )
    with pytest.raises(ValueError, match="none"):
        apply_eval_hparams(
            compose_cfg("eval", ["checkpoint=x", "+model.k=1"], tmp_path), zoo.load(NAME)
        )
