"""Checkpoint directories: atomic writes, strict safetensors loads, round trips."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

import zoo
from zoo.core.checkpoint import (
    CARD_NAME,
    CONFIG_NAME,
    WEIGHTS_NAME,
    checkpoints_root,
    headline_metrics,
)
from zoo.core.evaluation import format_metric

MODELS = zoo.list_models()
SHIPPED = sorted(p.name for p in checkpoints_root().glob("*") if (p / WEIGHTS_NAME).is_file())


def small_batch(model: zoo.core.ZooModule, seed: int = 0) -> Any:
    """One test batch of the model's own data, at a small size."""
    dm = zoo.create_datamodule(model, seed=seed, n_test=4, batch_size=4)
    dm.setup("test")
    return next(iter(dm.test_dataloader()))


def forward(model: zoo.core.ZooModule, batch: Any) -> list[torch.Tensor]:
    """Model outputs on a batch (``predict_step``), flattened to a list of tensors."""
    model.eval()
    with torch.no_grad():
        out = model.predict_step(batch, 0)
    leaves = torch.utils._pytree.tree_leaves(out)
    return [t for t in leaves if isinstance(t, torch.Tensor)]


def perturbed(name: str) -> zoo.core.ZooModule:
    """A model whose weights differ from any fresh initialisation."""
    torch.manual_seed(0)
    m = zoo.create(name)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return m


@pytest.mark.parametrize("name", MODELS)
def test_save_load_round_trip_is_exact(name: str, tmp_path: Path) -> None:
    m = perturbed(name)
    batch = small_batch(m)
    before = forward(m, batch)
    zoo.save_checkpoint(m, tmp_path / name, metrics={"test/x": torch.tensor(0.5)}, command="cmd")
    assert sorted(p.name for p in (tmp_path / name).iterdir()) == sorted(
        [CONFIG_NAME, WEIGHTS_NAME, CARD_NAME]
    )
    loaded = zoo.load(tmp_path / name)
    assert loaded.zoo_name == name and loaded.zoo_metrics == {"test/x": 0.5}
    assert loaded.zoo_data_config == m.zoo_data_config
    for a, b in zip(before, forward(loaded, batch), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    sd, sd2 = m.state_dict(), loaded.state_dict()
    assert sd.keys() == sd2.keys()
    for k in sd:
        torch.testing.assert_close(sd[k], sd2[k], rtol=0, atol=0)


@pytest.mark.parametrize("name", MODELS)
def test_weights_that_do_not_fit_fail_loudly(name: str, tmp_path: Path) -> None:
    m = perturbed(name)
    d = zoo.save_checkpoint(m, tmp_path / "ck")
    state = load_file(d / WEIGHTS_NAME)
    state["unexpected.weight"] = torch.zeros(2)
    save_file(state, d / WEIGHTS_NAME)
    with pytest.raises(ValueError, match=r"(?s)do not fit.*unexpected\.weight"):
        zoo.load(d)


def test_changed_architecture_fails_loudly(tmp_path: Path) -> None:
    m = zoo.create("gnn_nc")
    d = zoo.save_checkpoint(m, tmp_path / "ck")
    cfg = json.loads((d / CONFIG_NAME).read_text())
    cfg["model"]["depth"] = cfg["model"]["depth"] + 1
    (d / CONFIG_NAME).write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"(?s)do not fit model 'gnn_nc'.*Missing key"):
        zoo.load(d)


def test_invalid_config_in_checkpoint_is_rejected(tmp_path: Path) -> None:
    d = zoo.save_checkpoint(zoo.create("gnn_nc"), tmp_path / "ck")
    cfg = json.loads((d / CONFIG_NAME).read_text())
    cfg["model"]["depth"] = -3
    (d / CONFIG_NAME).write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="depth=-3 is out of range"):
        zoo.load(d)


def test_writes_are_atomic_and_replace_whole_directories(tmp_path: Path) -> None:
    m = zoo.create("gnn_nc")
    target = tmp_path / "ck"
    zoo.save_checkpoint(m, target, metrics={"test/a": 1.0})
    zoo.save_checkpoint(m, target, metrics={"test/a": 2.0})
    assert json.loads((target / CONFIG_NAME).read_text())["metrics"] == {"test/a": 2.0}
    # A file that a checkpoint does not have is the user's: the export refuses, it is kept.
    (target / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a zoo checkpoint directory"):
        zoo.save_checkpoint(m, target, metrics={"test/a": 3.0})
    assert (target / "notes.txt").read_text() == "mine"
    (target / "notes.txt").unlink()
    # A failing export (a metric that is not JSON-able) leaves the old checkpoint intact.
    with pytest.raises(TypeError):
        zoo.save_checkpoint(m, target, metrics={"test/a": object()})
    assert json.loads((target / CONFIG_NAME).read_text())["metrics"] == {"test/a": 2.0}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]  # no temporary leftovers


def test_not_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"not a zoo checkpoint: config\.json is missing"):
        zoo.load(tmp_path)


def test_unknown_name_and_missing_pretrained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError, match="Valid models"):
        zoo.load("no_such_model")
    monkeypatch.setenv("ZOO_CHECKPOINTS", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"python recipes/train\.py model=gnn_nc"):
        zoo.load("gnn_nc")


def test_weights_load_with_plain_safetensors_and_json(tmp_path: Path) -> None:
    m = perturbed("gnn_nc")
    d = zoo.save_checkpoint(m, tmp_path / "ck")
    code = (
        "import json, sys\n"
        "from safetensors.torch import load_file\n"
        f"sd = load_file({str(d / WEIGHTS_NAME)!r})\n"
        f"cfg = json.load(open({str(d / CONFIG_NAME)!r}))\n"
        "assert 'zoo' not in sys.modules\n"
        "print(json.dumps({'name': cfg['model']['name'], 'sums': {k: float(v.double().sum()) "
        "for k, v in sd.items()}}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    got = json.loads(out.stdout)
    assert got["name"] == "gnn_nc"
    want = {k: float(v.double().sum()) for k, v in m.state_dict().items()}
    assert got["sums"] == pytest.approx(want, rel=0, abs=0)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_checkpoint_loads_by_name(name: str) -> None:
    m = zoo.load(name)
    assert m.zoo_name == name
    assert m.zoo_metrics, f"checkpoints/{name} has no measured metrics"
    card = (checkpoints_root() / name / CARD_NAME).read_text()
    for key in headline_metrics(m.zoo_metrics):
        row = f"| {key} | {format_metric(m.zoo_metrics, key)} |"
        assert row in card, f"card of checkpoints/{name} lacks {row}"
    cfg = json.loads((checkpoints_root() / name / CONFIG_NAME).read_text())
    assert cfg["command"].startswith("python recipes/train.py"), "not produced by the recipe"
