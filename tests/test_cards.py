"""The shipped checkpoints' numbers: every metric carries its interval, the Hub card metadata
matches ``config.json``, and every metric reproduces on a data seed the checkpoint never saw.

The fresh seed is ``$ZOO_CARD_SEED`` (any integer; default: one derived from a hash, not
written anywhere in the repository). A fast subset runs in CI; ``-m slow`` runs all.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path
from statistics import NormalDist
from typing import Any

import pytest
from huggingface_hub import ModelCard

import zoo
from zoo.core.card import TASKS, headline_estimates
from zoo.core.checkpoint import CARD_NAME, checkpoints_root, read_config
from zoo.core.evaluation import LEVEL, Estimate, estimates, uncertain_keys

CHECKPOINTS = sorted(p.parent.name for p in checkpoints_root().glob("*/config.json"))
#: checkpoints whose fresh evaluation takes a few seconds on a CI core: re-evaluated in CI
FAST = {
    "backflow",
    "convnet_bp",
    "deepsets",
    "relation_net",
    "rank_transformer",
    "rank_transformer_r8",
    "rf_attention",
    "rf_mlp",
    "slater",
    "slater_l25",
    "spectral_sbm",
    "sym_single_index",
    "unet_bp",
    "unet_bp_noskip",
}
#: family-wise error rate of the reproduction test over all compared metrics of all checkpoints
ALPHA = 1e-3
#: how many metrics (with an interval) the shipped cards report in all
COMPARED = sum(len(estimates(read_config(checkpoints_root() / n)["metrics"])) for n in CHECKPOINTS)


def fresh_seed() -> int:
    env = os.environ.get("ZOO_CARD_SEED")
    if env is not None:
        return int(env)
    return int(hashlib.sha256(b"zoo card reproduction").hexdigest()[:7], 16)


def _params(names: list[str]) -> list[Any]:
    return [
        pytest.param(n, marks=() if n in FAST else pytest.mark.slow, id=n) for n in sorted(names)
    ]


def test_every_registered_model_ships_a_checkpoint() -> None:
    assert sorted(zoo.list_models()) == CHECKPOINTS


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_every_metric_carries_its_interval(name: str) -> None:
    metrics = read_config(checkpoints_root() / name)["metrics"]
    assert metrics, f"{name}: no metrics"
    assert uncertain_keys(metrics) == [], f"{name}: metrics without an interval"
    for key, est in estimates(metrics).items():
        if math.isfinite(est.value):
            assert est.lo <= est.value <= est.hi and est.n >= 1, (name, key, est)


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_card_metadata_matches_the_config(name: str) -> None:
    directory = checkpoints_root() / name
    config = read_config(directory)
    card = ModelCard.load(directory / CARD_NAME)
    data = card.data
    family = zoo.core.get_spec(name).family
    assert data.library_name == "zoo" and data.license == "mit"
    assert {"zoo", family, name} <= set(data.tags)
    results = {r.metric_name: r for r in data.eval_results or []}
    head = headline_estimates(config["metrics"])
    assert set(results) == set(head), name
    for key, est in head.items():
        r = results[key]
        assert r.task_type == TASKS[family] and r.dataset_split == "test"
        assert r.dataset_args["seed"] == config["data"]["seed"]
        assert r.dataset_args["n_test"] == config["data"]["n_test"]
        assert r.metric_value == pytest.approx(est.value)
        assert r.metric_args == {"ci95": [est.lo, est.hi], "n": est.n}
        assert f"| {key} | {est.value:.4g} [{est.lo:.4g}, {est.hi:.4g}]" in card.text


def _agree(card: Estimate, fresh: Estimate, z: float) -> bool:
    """Two independent estimates of one quantity agree within ``z`` combined standard errors
    (standard errors read off the 95 % intervals' half-widths)."""
    if not (math.isfinite(card.value) and math.isfinite(fresh.value)):
        return math.isnan(card.value) == math.isnan(fresh.value)
    z95 = NormalDist().inv_cdf(0.5 + LEVEL / 2)
    se = math.hypot(card.half_width, fresh.half_width) / z95
    return abs(card.value - fresh.value) <= z * se + 1e-12 * max(1.0, abs(card.value))


@pytest.mark.parametrize("name", _params(CHECKPOINTS))
def test_card_reproduces_on_a_fresh_seed(name: str, compose_cfg, tmp_path: Path) -> None:
    from eval import evaluate

    config = read_config(checkpoints_root() / name)
    seed = fresh_seed()
    assert seed != config["data"]["seed"]
    cfg = compose_cfg("eval", [f"checkpoint={name}", f"data.seed={seed}"], tmp_path)
    fresh = estimates(evaluate(cfg, zoo.load(name)))
    card = estimates(config["metrics"])
    assert set(fresh) == set(card), f"{name}: fresh evaluation reports other metrics"
    # Bonferroni over every metric of every shipped checkpoint: a correct card fails with
    # probability <= ALPHA in all (metrics of one model are positively correlated: fewer).
    z = NormalDist().inv_cdf(1 - ALPHA / (2 * COMPARED))
    bad = {k: (card[k], fresh[k]) for k in card if not _agree(card[k], fresh[k], z)}
    assert not bad, f"{name} (fresh seed {seed}, z = {z:.2f}): {bad}"
