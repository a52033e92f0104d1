"""recipes/retrain.py: a shipped checkpoint retrained by its recorded commands, and the table."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

import zoo
from tests.common import REPO_ROOT, run_recipe
from zoo.core.checkpoint import CONFIG_NAME

SHRINK = [
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=2",
    "+trainer.limit_val_batches=1",
    "logger=none",
]


def test_retrain_reruns_the_recorded_commands_and_writes_the_table(tmp_path: Path) -> None:
    out, md = tmp_path / "re", tmp_path / "retrain.md"
    args = [
        "deepsets",
        f"--export-root={out}",
        f"--table={md}",
        *(f"--train-override={o}" for o in SHRINK),
        "-o",
        "data.n_test=256",
    ]
    res = run_recipe("retrain.py", args, tmp_path, timeout=400)
    assert res.returncode == 0, res.stderr[-3000:]
    shipped = json.loads((REPO_ROOT / "checkpoints" / "deepsets" / CONFIG_NAME).read_text())
    config = json.loads((out / "deepsets" / CONFIG_NAME).read_text())
    assert config["model"] == shipped["model"]  # the recorded experiment, retrained
    assert config["evaluation"]["command"].endswith("data.n_test=256")
    assert config["metrics"]["test/nmse_n"] == 256
    assert config["metrics"]["test/nmse"] != shipped["metrics"]["test/nmse"]
    zoo.load(out / "deepsets")
    text = md.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| `deepsets`"))
    assert "`test/mse`" in row and "n = 256" in row and "n = 16384" in row
    assert float(row.split("|")[2]) > 0
    assert "python recipes/retrain.py deepsets" in text
    # started again (an interrupted retraining): what was finished is kept, not retrained
    again = run_recipe("retrain.py", args, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "deepsets: retrained already" in again.stdout
    assert md.read_text() == text


def test_retrain_of_an_unknown_name_lists_the_shipped_ones_before_training(tmp_path) -> None:
    res = run_recipe("retrain.py", ["deepset", f"--table={tmp_path / 't'}"], tmp_path, timeout=120)
    assert res.returncode != 0
    assert "no shipped checkpoint 'deepset'" in res.stderr and "'deepsets'" in res.stderr
    assert not (tmp_path / "t").exists()


SHIPPED = sorted(p.parent.name for p in (REPO_ROOT / "checkpoints").glob(f"*/{CONFIG_NAME}"))


@pytest.mark.parametrize("name", SHIPPED)
def test_every_recorded_command_is_retargeted(name: str, tmp_path: Path) -> None:
    from retrain import commands

    config = json.loads((REPO_ROOT / "checkpoints" / name / CONFIG_NAME).read_text())
    train, evaluation = commands(name, tmp_path / name)
    assert {f"experiment={name}", f"model={name}"} & set(train)
    assert f"export_dir={tmp_path / name}" in train
    assert sum(a.startswith("export_dir=") for a in train) == 1
    if config.get("evaluation", {}).get("command"):
        assert evaluation is not None and f"checkpoint={tmp_path / name}" in evaluation
        assert sum(a.startswith("checkpoint=") for a in evaluation) == 1
        assert "rewrite=true" in evaluation
    # retargeted at the shipped directory: exactly the commands the card records
    train, evaluation = commands(name, REPO_ROOT / "checkpoints" / name)
    assert shlex.join(["python", "recipes/train.py", *train]) == config["command"]
    if evaluation is not None:
        recorded = config["evaluation"]["command"]
        assert shlex.join(["python", "recipes/eval.py", *evaluation]) == recorded
