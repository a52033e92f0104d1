"""Every bad input fails before anything is allocated, with a message naming the key, the value
and the fix; a non-finite training loss stops the run with a non-zero exit and no export.

"Fails fast" is checked as: the error comes within :data:`FAST` seconds (building the
offending model or data would take minutes or exhaust memory) and, through the recipe, no
file is written under the run directory.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch

import zoo
from tests.common import RECIPES, TINY_RUN
from zoo.core.config import MEMORY_ENV
from zoo.core.registry import get_datamodule_class, get_spec

FAST = 2.0  # seconds
HAS_CUDA = torch.cuda.is_available()
SMALL_RF = [
    "model=rf_mlp",
    "data.n_train=64",
    "data.n_val=8",
    "data.n_test=8",
    "data.batch_size=16",
]


@contextmanager
def fails_fast(match: str, error: type[Exception] = ValueError) -> Iterator[None]:
    """Expect ``error`` with a message matching ``match`` within :data:`FAST` seconds."""
    start = time.perf_counter()
    with pytest.raises(error, match=match):
        yield
    assert time.perf_counter() - start < FAST


def run_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


# -- non-finite values --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "key", "value"),
    [
        ("gnn_nc", "lr", math.inf),
        ("gnn_nc", "lr", math.nan),
        ("lowrank_attention", "temperature", math.inf),
        ("rf_attention", "w_mean", -math.inf),  # no range: only finiteness catches it
    ],
)
def test_non_finite_floats_are_refused(name: str, key: str, value: float) -> None:
    with fails_fast(rf"invalid hyper-parameter for model '{name}': {key}={value!r} must be finite"):
        zoo.create(name, **{key: value})


def test_non_finite_sampler_and_target_params_are_refused() -> None:
    with fails_fast(r"target 'calogero' \(target_params\): lam=inf must be finite"):
        zoo.create_datamodule("jastrow", target_params={"lam": math.inf})
    with fails_fast(r"sampler 'gaussian' \(sampler_params\): std=nan must be finite"):
        zoo.create_datamodule("deepsets", sampler="gaussian", sampler_params={"std": math.nan})


# -- seeds ----------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [-5, 2**63])
def test_out_of_range_data_seeds_are_refused(seed: int) -> None:
    with fails_fast(rf"seed={seed} is not a valid seed: it must be an int in \[0, 2\*\*63\)"):
        zoo.create_datamodule("gnn_nc", seed=seed)
    with fails_fast(rf"grammar_seed={seed} is not a valid seed"):
        zoo.create_datamodule("unet_bp", grammar_seed=seed)
    with fails_fast(rf"feature_seed={seed} is not a valid seed"):
        zoo.create("rf_attention", feature_seed=seed)


def test_largest_seed_draws_data() -> None:
    dm = zoo.create_datamodule("deepsets", seed=2**63 - 1, n_train=4, n_val=2, n_test=2)
    x, _ = dm.split("train")
    assert x.shape == (4, 8, 3) and bool(torch.isfinite(x).all())
    (xb, _yb), *_ = list(dm.train_dataloader())  # the shuffle seed is derived without overflow
    assert sorted(xb.flatten().tolist()) == sorted(x.flatten().tolist())


# -- sizes: estimated before allocation -----------------------------------------------------
def test_deep_gnn_is_refused_by_its_estimate() -> None:
    # on main this built for minutes and took > 7 GB before it was stopped
    with fails_fast(
        r"model 'gnn_nc' \(depth=1000000\) needs ≈ \d+ GiB for [\d.e+]+ parameters, "
        r"[\d.e+]+ modules and .* more than the limit of 8 GiB \(ZOO_MAX_MEMORY_GB\): lower "
        r"its sizes, or raise the limit with ZOO_MAX_MEMORY_GB=\d+"
    ):
        zoo.create("gnn_nc", depth=10**6)


def test_absurd_heads_are_refused() -> None:
    with fails_fast(r"heads=10000000 does not divide dim=64: set heads to a divisor of dim"):
        zoo.create("lowrank_attention", heads=10**7)
    with fails_fast(r"model 'rf_attention' \(heads=10000000\) needs ≈ \d+ GiB"):
        zoo.create("rf_attention", heads=10**7)


def test_huge_graphs_are_refused_by_the_data_estimate() -> None:
    with fails_fast(
        r"datamodule 'sbm' \(n_nodes=1000000000000, .*\) needs an astronomical amount of "
        r"memory .* more than the limit of 8 GiB \(ZOO_MAX_MEMORY_GB\): lower its sizes"
    ):
        zoo.create_datamodule("gnn_nc", n_nodes=10**12)
    with fails_fast(r"datamodule 'ghm' \(depth=100000\) needs an astronomical amount"):
        zoo.create("unet_bp", depth=10**5)  # the tree has 2**100000 leaves


def test_the_memory_limit_is_an_environment_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MEMORY_ENV, "0.0001")
    with fails_fast(r"more than the limit of 0.0001 GiB \(ZOO_MAX_MEMORY_GB\)"):
        zoo.create("unet_bp")
    with pytest.raises(ValueError, match=r"raise the limit with ZOO_MAX_MEMORY_GB=\d+$") as info:
        zoo.create("unet_bp")
    monkeypatch.setenv(MEMORY_ENV, str(info.value).rsplit("=", 1)[1])  # what it suggests
    assert zoo.create("unet_bp").hparams.depth == 4
    monkeypatch.setenv(MEMORY_ENV, "lots")
    with fails_fast(r"ZOO_MAX_MEMORY_GB='lots' must be a positive number of GiB"):
        zoo.create("unet_bp")


def test_estimates_match_what_is_built_and_cost_nothing() -> None:
    """The analytic parameter and module counts equal the built model's, for every model that
    declares a footprint (optional for a new model: without one, only its data is checked)."""
    shipped = [n for n in zoo.list_models() if hasattr(get_spec(n).cls, "footprint")]
    assert "gnn_nc" in shipped and "unet_bp" in shipped
    for name in shipped:
        spec = get_spec(name)
        hp, data = spec.configs()
        data_cls = get_datamodule_class(data["name"])
        assert data_cls.footprint({k: v for k, v in data.items() if k != "name"}).bytes > 0
        rng = torch.random.get_rng_state()
        estimate = spec.cls.footprint(hp, data)
        assert torch.equal(torch.random.get_rng_state(), rng), f"{name}: estimate drew numbers"
        model = zoo.create(name)
        built = sum(t.numel() for t in (*model.parameters(), *model.buffers()))
        assert (estimate.params, estimate.modules) == (built, len(list(model.modules()))), name


# -- inconsistent pairs, at config time -----------------------------------------------------
def test_rank_above_dim_fails_at_config_time() -> None:
    with fails_fast(r"rank=100 > dim=8: .* set rank <= 8"):
        get_spec("lowrank_attention").configs({"rank": 100, "dim": 8})
    with fails_fast(r"rank=100 > dim=8"):
        zoo.create("lowrank_attention", rank=100, dim=8)


def test_unknown_sampler_and_target_params_fail_at_construction() -> None:
    with fails_fast(
        r"unknown hyper-parameter\(s\) \['sd'\] for sampler 'gaussian' \(sampler_params\); "
        r"valid keys are \['std'\]"
    ):
        zoo.create_datamodule("deepsets", sampler="gaussian", sampler_params={"sd": 0.5})
    with fails_fast(
        r"unknown hyper-parameter\(s\) \['lamda'\] for target 'calogero' \(target_params\); "
        r"valid keys are \['lam'\]"
    ):
        zoo.create_datamodule("slater", target_params={"lamda": 2.0})
    with fails_fast(r"target 'pairwise_energy' \(target_params\): u='cos' is not one of"):
        zoo.create_datamodule("deepsets", target_params={"u": "cos"})


# -- devices ----------------------------------------------------------------------------------
def test_unavailable_data_device_is_refused() -> None:
    count = torch.cuda.device_count() if HAS_CUDA else 0
    device = f"cuda:{count}" if HAS_CUDA else "cuda"
    with fails_fast(rf"device='{device}' is not available: this machine has"):
        zoo.create_datamodule("gnn_nc", device=device)
    with fails_fast(r"device='gpu' is not a device: use 'auto', 'cpu', 'cuda'"):
        zoo.create_datamodule("gnn_nc", device="gpu")


# -- names ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [None, 3, ""])
def test_create_without_a_name_lists_the_models(name: Any) -> None:
    kind = type(name).__name__
    with fails_fast(
        rf"a model name must be a non-empty str, got {re.escape(repr(name))} \({kind}\)\. "
        r"Valid models: \['backflow', 'convnet_bp', 'deepsets'"
    ):
        zoo.create(name)


# -- through the recipe: nothing is written ----------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["model.lr=inf"], r"lr=inf must be finite"),
        (["data.seed=-5"], r"seed=-5 is not a valid seed"),
        (["model.depth=1000000"], r"model 'gnn_nc' \(depth=1000000\) needs"),
        (["trainer.max_epochs=-1"], r"trainer\.max_epochs=-1 trains until the run is stopped"),
        (["trainer.max_epochs=0"], r"trainer\.max_epochs=0 trains nothing: set trainer\."),
        (["+trainer.max_epoch=3"], r"trainer\.max_epoch \(did you mean trainer\.max_epochs\?\)"),
        (["trainer.precision=8"], r"trainer\.precision=8 is not one of \[64, 32, 16"),
        (["trainer.precision=16-mixed"], r"does not run on the CPU: use trainer\.precision=bf16"),
        (["trainer.devices=0"], r"trainer\.devices=0 is not available .* an int > 0"),
        (["seed=-5"], r"-5 is not in bounds"),  # Lightning's seed_everything, first in train()
    ],
)
def test_recipe_refuses_before_writing(
    overrides: list[str], match: str, compose_cfg: Callable[..., Any], tmp_path: Path
) -> None:
    from train import train

    cfg = compose_cfg("train", ["model=gnn_nc", *TINY_RUN, *overrides], tmp_path)
    with fails_fast(match):
        train(cfg)
    assert run_files(tmp_path) == []


@pytest.mark.skipif(HAS_CUDA, reason="checks a machine without a GPU")
def test_recipe_refuses_a_gpu_trainer_without_gpu(compose_cfg: Callable, tmp_path: Path) -> None:
    from train import train

    cfg = compose_cfg("train", ["model=gnn_nc", "trainer=gpu", *TINY_RUN], tmp_path)
    with fails_fast(r"trainer\.accelerator=gpu but this machine has no CUDA device: .*trainer=cpu"):
        train(cfg)
    assert run_files(tmp_path) == []


def test_bounded_runs_and_cpu_ddp_pass(compose_cfg: Callable, tmp_path: Path) -> None:
    from _common import validate_trainer_cfg

    for overrides in (
        ["trainer.max_epochs=-1", "+trainer.max_steps=5"],
        ["trainer.max_epochs=-1", "+trainer.max_time=00:00:01:00"],
        ["trainer.max_epochs=null"],  # Lightning's default: 1000 epochs
        ["trainer=ddp_cpu"],
        ["trainer.precision=bf16-mixed", "trainer.gradient_clip_val=1.0"],
    ):
        validate_trainer_cfg(compose_cfg("train", overrides, tmp_path))


# -- a non-finite training loss -----------------------------------------------------------------
def test_nan_loss_stops_training_and_exports_nothing(compose_cfg: Callable, tmp_path: Path) -> None:
    from train import train

    export = tmp_path / "export"
    cfg = compose_cfg(
        "train", [*SMALL_RF, "model.lr=1e30", *TINY_RUN, f"export_dir={export}"], tmp_path
    )
    with pytest.raises(
        FloatingPointError,
        match=r"RFMLP: the training loss is not finite \(inf\) at epoch 0, global step 1: "
        r"training stopped\. Lower the learning rate \(model\.lr=1e\+30\)",
    ):
        train(cfg)
    assert not export.exists()


def test_finite_run_trains_and_is_reproducible(compose_cfg: Callable, tmp_path: Path) -> None:
    """The loss check never fires on a finite run, which stays bit-for-bit reproducible."""
    from train import train

    weights = []
    for i in range(2):
        run = tmp_path / str(i)
        cfg = compose_cfg("train", [*SMALL_RF, *TINY_RUN, f"export_dir={run / 'export'}"], run)
        weights.append(train(cfg)["model"].readout.detach().clone())
    assert torch.equal(*weights) and bool(weights[0].abs().sum() > 0)


def test_train_script_exits_non_zero_on_nan_loss(tmp_path: Path) -> None:
    export = tmp_path / "export"
    args = [*SMALL_RF, "model.lr=1e30", *TINY_RUN, f"export_dir={export}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1"}
    proc = subprocess.run(
        [sys.executable, str(RECIPES / "train.py"), *args, f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "FloatingPointError: RFMLP: the training loss is not finite" in proc.stderr
    assert not export.exists()
