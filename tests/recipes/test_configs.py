"""Hydra's model/data groups come from the registry, and the recipe honours the model↔data
contract: shared keys follow the model, contradictions fail before anything is built."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

import zoo
from zoo.core.figures import list_figures

CONFIGS = Path(__file__).resolve().parents[2] / "recipes" / "configs"


def test_no_yaml_mirrors_the_registry() -> None:
    assert not (CONFIGS / "model").exists() and not (CONFIGS / "data").exists()


@pytest.mark.parametrize("name", zoo.list_models())
def test_composed_model_and_data_equal_registry_defaults(name: str, compose_cfg, tmp_path) -> None:
    from _common import model_and_data

    cfg = compose_cfg("train", [f"model={name}"], tmp_path)
    spec = zoo.get_spec(name)
    assert cfg.model.name == name
    assert model_and_data(cfg) == (name, *spec.configs())
    for mk, dk in spec.shared.items():  # the data node interpolates the model's value
        assert OmegaConf.to_container(cfg.data, resolve=False)[dk] == f"${{model.{mk}}}"


def test_model_override_reaches_the_data(compose_cfg, tmp_path: Path) -> None:
    from _common import model_and_data

    _, model, data = model_and_data(
        compose_cfg("train", ["model=unet_bp", "model.depth=3"], tmp_path)
    )
    assert model["depth"] == 3 and data["depth"] == 3
    _, model, data = model_and_data(
        compose_cfg("train", ["model=unet_bp", "data.depth=2"], tmp_path)
    )
    assert model["depth"] == 2 and data["depth"] == 2  # data alone set: the model follows
    _, model, data = model_and_data(
        compose_cfg("train", ["model=gnn_nc", "model.n_classes=3", "data.n_classes=3"], tmp_path)
    )
    assert model["n_classes"] == data["n_classes"] == 3


def test_contradictory_shared_keys_fail_before_training(compose_cfg, tmp_path: Path) -> None:
    from train import train

    cfg = compose_cfg("train", ["model=gnn_nc", "model.n_classes=3", "data.n_classes=2"], tmp_path)
    with pytest.raises(ValueError, match=r"model\.n_classes=3 contradicts data\.n_classes=2"):
        train(cfg)
    # the model's default set explicitly on the command line still counts as set
    cfg = compose_cfg("train", ["model=unet_bp", "model.depth=4", "data.depth=3"], tmp_path)
    with pytest.raises(ValueError, match=r"model\.depth=4 contradicts data\.depth=3"):
        train(cfg)
    assert not any(tmp_path.iterdir())


def test_experiments_name_registered_models() -> None:
    for path in (CONFIGS / "experiment").glob("*.yaml"):
        defaults = OmegaConf.to_container(OmegaConf.load(path))["defaults"]
        chosen = {k: v for d in defaults for k, v in d.items()}
        assert chosen["override /model"] in zoo.list_models(), path.name
        assert chosen.get("override /data", chosen["override /model"]) == chosen["override /model"]


def test_every_figure_has_a_config() -> None:
    figs = {p.stem for p in (CONFIGS / "fig").glob("*.yaml")}
    assert figs == set(list_figures())
    for f in figs:
        assert OmegaConf.load(CONFIGS / "fig" / f"{f}.yaml").name == f


@pytest.mark.parametrize(
    "path", sorted((CONFIGS / "experiment").glob("*.yaml")), ids=lambda p: p.stem
)
def test_experiment_composes_its_shipped_checkpoint_config(
    path: Path, compose_cfg, tmp_path
) -> None:
    """``experiment=<name>`` rebuilds the model and data config of checkpoints/<name>."""
    import json

    from _common import model_and_data

    from zoo.core.checkpoint import CONFIG_NAME, checkpoints_root

    shipped = checkpoints_root() / path.stem / CONFIG_NAME
    if not shipped.is_file():
        pytest.skip(f"no shipped checkpoint for {path.stem}")
    saved = json.loads(shipped.read_text())
    saved_model = dict(saved["model"])
    assert model_and_data(compose_cfg("train", [f"experiment={path.stem}"], tmp_path)) == (
        saved_model.pop("name"),
        # keys added to a model after its checkpoint was trained take their defaults
        *zoo.get_spec(path.stem).configs(saved_model, saved["data"]),
    )
    assert zoo.get_spec(path.stem).configs(saved_model, saved["data"])[1] == saved["data"]
