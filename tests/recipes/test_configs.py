"""The Hydra configs mirror the registry: names and defaults cannot drift."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

import zoo
from zoo.core.figures import list_figures

CONFIGS = Path(__file__).resolve().parents[2] / "recipes" / "configs"


def test_every_model_has_configs_and_every_config_a_model() -> None:
    models = set(zoo.list_models())
    assert {p.stem for p in (CONFIGS / "model").glob("*.yaml")} == models
    assert {p.stem for p in (CONFIGS / "data").glob("*.yaml")} == models


@pytest.mark.parametrize("name", zoo.list_models())
def test_model_and_data_configs_equal_registry_defaults(name: str) -> None:
    spec = zoo.get_spec(name)
    model = OmegaConf.to_container(OmegaConf.load(CONFIGS / "model" / f"{name}.yaml"))
    data = OmegaConf.to_container(OmegaConf.load(CONFIGS / "data" / f"{name}.yaml"))
    assert model.pop("name") == name
    assert model == spec.model_config(), f"model/{name}.yaml drifted from the registry"
    assert data == spec.data_config(), f"data/{name}.yaml drifted from the registry"


def test_every_figure_has_a_config() -> None:
    figs = {p.stem for p in (CONFIGS / "fig").glob("*.yaml")}
    assert figs == set(list_figures())
    for f in figs:
        assert OmegaConf.load(CONFIGS / "fig" / f"{f}.yaml").name == f
