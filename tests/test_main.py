"""``python -m zoo``: the model table and ``show <name>``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import zoo
from zoo.__main__ import list_table, main, markdown_table, show

README = Path(__file__).resolve().parents[1] / "README.md"


def test_show_prints_the_full_model_and_data_config() -> None:
    out = json.loads(show("unet_bp"))
    assert out["model"]["name"] == "unet_bp" and out["data"]["name"] == "ghm"
    model, data = zoo.get_spec("unet_bp").configs()
    assert out["model"] == {"name": "unet_bp", **model} and out["data"] == data
    assert out["shared"] == {"n_symbols": "n_symbols", "branching": "branching", "depth": "depth"}
    assert all(out["model"][mk] == out["data"][dk] for mk, dk in out["shared"].items())


def test_show_unknown_name_exits_with_the_valid_ones(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["show", "unet_b"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "Did you mean ['unet_bp'" in err and "'gnn_nc'" in err


def test_table_lists_every_model_with_its_family() -> None:
    table = list_table()
    names = list(table.columns[0].cells)
    families = list(table.columns[1].cells)
    assert names == zoo.list_models()
    assert families[names.index("gnn_nc")] == "graphs"
    assert families[names.index("jastrow")] == "ansatz"


def test_readme_model_table_is_the_generated_one() -> None:
    """README's table is ``python -m zoo list --markdown`` (the shipped cards' numbers)."""
    table = markdown_table()
    assert table in README.read_text(), "regenerate: python -m zoo list --markdown"
    assert table.count("\n") == len(zoo.list_models()) + 2
