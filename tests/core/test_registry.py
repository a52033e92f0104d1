"""Registry behaviour: names are the API, errors list what is valid."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

import pytest
import torch

import zoo
from zoo.core import registry
from zoo.core.config import Interval
from zoo.core.data import SyntheticDataModule
from zoo.core.module import ZooModule


class _Data(SyntheticDataModule):
    def __init__(self, dim: Annotated[int, Interval(ge=1)] = 3, **kwargs: Any) -> None:
        super().__init__(**kwargs)

    def generate(self, split, n, generator, device):  # type: ignore[no-untyped-def]
        x = torch.randn(n, self.hparams.dim, generator=generator, device=device)
        return x, x.sum(-1)


class _Lin(ZooModule):
    """A linear probe used to test the registry."""

    def __init__(self, dim: Annotated[int, Interval(ge=1)] = 3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lin = torch.nn.Linear(dim, 1)


@pytest.fixture
def tmp_registry() -> Iterator[None]:
    """Register `_lin`/`_lin_wide` and `_data` for one test only."""
    registry.register_datamodule("_data")(_Data)
    registry.register_model("_lin", data="_data", data_defaults={"n_train": 8}, shared=("dim",))(
        _Lin
    )
    registry.register_model("_lin_wide", data="_data", defaults={"dim": 5}, shared=("dim",))(_Lin)
    yield
    for name in ("_lin", "_lin_wide"):
        registry.MODELS.remove(name)
    registry.DATAMODULES.remove("_data")


def test_unknown_model_lists_valid_names_and_suggests() -> None:
    with pytest.raises(ValueError, match=r"unknown model 'gnn_cn'.*Did you mean.*Valid models: \["):
        zoo.create("gnn_cn")
    with pytest.raises(ValueError) as e:
        zoo.get_spec("definitely-not-a-model")
    for name in zoo.list_models():
        assert repr(name) in str(e.value)


def test_create_applies_name_defaults_and_validates(tmp_registry: None) -> None:
    m = zoo.create("_lin_wide")
    assert m.hparams.dim == 5 and m.lin.in_features == 5
    assert m.zoo_name == "_lin_wide"
    assert m.zoo_data_config == {"name": "_data", **zoo.create_datamodule("_lin_wide").hparams}
    with pytest.raises(ValueError, match="dim=0 is out of range"):
        zoo.create("_lin", dim=0)
    with pytest.raises(ValueError, match=r"unknown hyper-parameter\(s\) \['width'\]"):
        zoo.create("_lin", width=3)


def test_description_comes_from_docstring(tmp_registry: None) -> None:
    assert zoo.get_spec("_lin").description == "A linear probe used to test the registry."


def test_list_models_pattern(tmp_registry: None) -> None:
    assert zoo.list_models("_lin*") == ["_lin", "_lin_wide"]


def test_create_datamodule_from_module_name_and_dict(tmp_registry: None) -> None:
    m = zoo.create("_lin")
    dm = zoo.create_datamodule(m, seed=7)
    assert dm.hparams.seed == 7 and dm.hparams.n_train == 8
    assert zoo.create_datamodule("_lin").hparams.seed == 0
    dm2 = zoo.create_datamodule({"name": "_data", "dim": 2})
    assert dm2.hparams.dim == 2
    with pytest.raises(ValueError, match="unknown datamodule '_dta'"):
        zoo.create_datamodule({"name": "_dta"})
    with pytest.raises(ValueError, match="n_train=0 is out of range"):
        zoo.create_datamodule("_lin", n_train=0)


def test_same_name_for_another_class_is_refused(tmp_registry: None) -> None:
    class Other(_Lin):
        pass

    with pytest.raises(ValueError, match="already registered"):
        registry.register_model("_lin", data="_data")(Other)


def test_every_registered_model_builds_with_defaults() -> None:
    assert "gnn_nc" in zoo.list_models()
    for name in zoo.list_models():
        spec = zoo.get_spec(name)
        assert spec.description, f"{name} has no description"
        m = zoo.create(name)
        assert isinstance(m, ZooModule)
        assert m.zoo_data_config["name"] == spec.data


def test_generic_registry_lists_suggests_and_refuses_duplicates() -> None:
    reg: registry.Registry[int] = registry.Registry("widget")
    reg.add("alpha", 1)
    reg.add("alpha", 1)  # the same entry again (a module re-import) is fine
    reg.register("beta")(2)
    assert reg.names() == ["alpha", "beta"] and "beta" in reg and len(reg) == 2
    assert reg.get("beta") == 2
    with pytest.raises(ValueError, match=r"unknown widget 'alpah'\. Did you mean \['alpha'\]"):
        reg.get("alpah")
    with pytest.raises(ValueError, match=r"Valid widgets: \['alpha', 'beta'\]"):
        reg.get(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="widget name 'alpha' is already registered to 1"):
        reg.add("alpha", 3)


def test_shared_keys_follow_the_model(tmp_registry: None) -> None:
    m = zoo.create("_lin", dim=4)
    assert m.zoo_data_config["dim"] == 4 and zoo.create_datamodule(m).hparams.dim == 4
    assert zoo.create("_lin_wide").zoo_data_config["dim"] == 5
    model_cfg, data_cfg = zoo.get_spec("_lin").configs({}, {"dim": 6})
    assert model_cfg["dim"] == 6 and data_cfg["dim"] == 6  # the data alone set: model follows
    assert zoo.create_datamodule("_lin", dim=2).hparams.dim == 2


def test_contradictory_shared_keys_fail_naming_both(tmp_registry: None) -> None:
    with pytest.raises(ValueError, match=r"model\.dim=3 contradicts data\.dim=2"):
        zoo.get_spec("_lin").configs({"dim": 3}, {"dim": 2})
    m = zoo.create("_lin", dim=4)
    with pytest.raises(ValueError, match=r"model\.dim=4 vs data\.dim=2"):
        zoo.create_datamodule(m, dim=2)
    with pytest.raises(ValueError, match="shared with the model"):
        registry.register_model("_bad", data="_data", data_defaults={"dim": 2}, shared=("dim",))(
            _Lin
        )
