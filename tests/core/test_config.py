"""Typed hyper-parameter validation (zoo.core.config)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
from pydantic import ValidationError

from zoo.core.config import (
    ALLOW_INF,
    Device,
    Interval,
    Seed,
    _adapter,
    hparam_defaults,
    validate_kwargs,
)


class Base:
    def __init__(self, *, lr: Annotated[float, Interval(gt=0)] = 1e-3) -> None:
        pass


class Child(Base):
    def __init__(
        self,
        depth: Annotated[int, Interval(ge=1, le=64)] = 4,
        act: Literal["relu", "tanh"] = "relu",
        sizes: list[int] | None = None,
        p: Annotated[float, Interval(ge=0, le=1)] = 0.5,
        flag: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)


def test_defaults_include_parent_parameters() -> None:
    out = validate_kwargs(Child, {}, what="m")
    assert out == {"depth": 4, "act": "relu", "sizes": None, "p": 0.5, "flag": False, "lr": 1e-3}


def test_unknown_key_lists_valid_keys() -> None:
    with pytest.raises(ValueError, match=r"unknown hyper-parameter\(s\) \['detph'\].*'depth'"):
        validate_kwargs(Child, {"detph": 3}, what="m")


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("depth", 0, "depth=0 is out of range: must be >= 1"),
        ("depth", 65, "depth=65 is out of range"),
        ("depth", 2.5, "depth=2.5 must be an int"),
        ("depth", True, "must be an int"),
        ("act", "gelu", r"act='gelu' is not one of \['relu', 'tanh'\]"),
        ("lr", 0.0, "lr=0.0 is out of range: must be > 0"),
        ("p", float("nan"), "p=nan must be finite"),
        ("p", float("inf"), "p=inf must be finite"),
        ("flag", 1, "flag=1 must be a bool"),
        ("sizes", [1, "a"], r"sizes\[1\]='a' must be an int"),
        ("sizes", {1, 2}, r"sizes=\{1, 2\} must be a list"),
        ("sizes", "12", "sizes='12' must be a list"),
        ("depth", "4", "depth='4' must be an int"),
        ("lr", True, "lr=True must be a float"),
        ("lr", "1e-3", "lr='1e-3' must be a float"),
        ("flag", "yes", "flag='yes' must be a bool"),
        ("p", 2, r"p=2 is out of range: must be >= 0 and <= 1"),
    ],
)
def test_bad_values_name_the_key(key: str, value: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        validate_kwargs(Child, {key: value}, what="model 'm'")


def test_coercion() -> None:
    out = validate_kwargs(Child, {"lr": 1, "sizes": (1, 2), "p": 1}, what="m")
    assert out["lr"] == 1.0 and isinstance(out["lr"], float)
    assert out["sizes"] == [1, 2]


def test_omegaconf_values_are_plain() -> None:
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"sizes": [3, 4]})
    out = validate_kwargs(Child, cfg, what="m")
    assert out["sizes"] == [3, 4] and type(out["sizes"]) is list


def test_interval_str() -> None:
    assert str(Interval(ge=0, lt=1)) == ">= 0 and < 1"


class Nested:
    def __init__(
        self,
        beta: list[float] | None = None,
        grid: list[list[int]] = (),
        width: Annotated[int, Interval(ge=1)] | None = None,
        name: str | None = None,
        n: int | str = 0,
        extra: dict | None = None,
        weights: dict[str, float] | None = None,
        out_dir: Path = Path("."),
    ) -> None:
        pass


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("beta", [0.5, "x"], r"beta\[1\]='x' must be a float"),
        ("beta", [0.5, True], r"beta\[1\]=True must be a float"),
        ("beta", [float("nan")], r"beta\[0\]=nan must be finite"),
        ("beta", [1.0, float("-inf")], r"beta\[1\]=-inf must be finite"),
        ("beta", [None, "x"], r"beta\[0\]=None must be a float; beta\[1\]='x' must be a float"),
        ("grid", [[1], [2, "x"]], r"grid\[1\]\[1\]='x' must be an int"),
        ("width", 0, "width=0 is out of range: must be >= 1"),
        ("name", 3, "name=3 must be a str"),
        ("n", 1.5, "n=1.5 must be an int; n=1.5 must be a str"),
        ("extra", [1], r"extra=\[1\] must be a mapping"),
        ("weights", {"a": "x"}, r"weights\['a'\]='x' must be a float"),
        ("out_dir", 3, "out_dir=3 is not a valid path"),
    ],
)
def test_nested_errors_name_the_element(key: str, value: object, match: str) -> None:
    with pytest.raises(ValueError, match=match) as info:
        validate_kwargs(Nested, {key: value}, what="model 'm'")
    assert not isinstance(info.value, ValidationError)
    assert str(info.value).startswith("invalid hyper-parameter for model 'm': ")


def test_nested_coercion() -> None:
    out = validate_kwargs(
        Nested,
        {"beta": (1, 2.5), "grid": ((1, 2), [3]), "width": None, "out_dir": "figs"},
        what="m",
    )
    assert out["beta"] == [1.0, 2.5] and all(type(b) is float for b in out["beta"])
    assert out["grid"] == [[1, 2], [3]] and type(out["grid"][0]) is list
    assert out["width"] is None
    assert out["out_dir"] == Path("figs")


def test_float_accepts_int_but_not_inf_or_nan() -> None:
    out = validate_kwargs(Child, {"lr": 2}, what="m")
    assert out["lr"] == 2.0 and type(out["lr"]) is float
    for bad in ("inf", "-inf", "nan"):
        with pytest.raises(ValueError, match=f"lr={bad} must be finite"):
            validate_kwargs(Child, {"lr": float(bad)}, what="m")


def test_allow_inf_marker_admits_inf_but_not_nan() -> None:
    def fn(
        *,
        cap: Annotated[float, Interval(gt=0), ALLOW_INF] = float("inf"),
        caps: Annotated[list[float], ALLOW_INF] | None = None,
    ) -> None:
        pass

    assert validate_kwargs(fn, {}, what="f")["cap"] == float("inf")
    assert validate_kwargs(fn, {"cap": float("inf")}, what="f")["cap"] == float("inf")
    assert validate_kwargs(fn, {"caps": [1, float("inf")]}, what="f")["caps"] == [1.0, float("inf")]
    with pytest.raises(ValueError, match="cap=nan must not be NaN"):
        validate_kwargs(fn, {"cap": float("nan")}, what="f")
    with pytest.raises(ValueError, match="cap=-inf is out of range: must be > 0"):
        validate_kwargs(fn, {"cap": float("-inf")}, what="f")


def test_seeds_are_ints_in_0_to_2_pow_63() -> None:
    def fn(*, seed: Seed = 0) -> None:
        pass

    assert validate_kwargs(fn, {"seed": 2**63 - 1}, what="f")["seed"] == 2**63 - 1
    for bad in (-1, 2**63):
        with pytest.raises(ValueError, match=rf"seed={bad} is not a valid seed: .*\[0, 2\*\*63\)"):
            validate_kwargs(fn, {"seed": bad}, what="f")
    with pytest.raises(ValueError, match=r"seed=1\.5 must be an int"):
        validate_kwargs(fn, {"seed": 1.5}, what="f")


def test_devices_must_exist_here() -> None:
    import torch

    def fn(*, device: Device = "auto") -> None:
        pass

    assert validate_kwargs(fn, {"device": "cpu"}, what="f")["device"] == "cpu"
    with pytest.raises(ValueError, match="device='gpu' is not a device: use 'auto', 'cpu'"):
        validate_kwargs(fn, {"device": "gpu"}, what="f")
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(ValueError, match=f"device='cuda:{n}' is not available"):
        validate_kwargs(fn, {"device": f"cuda:{n}"}, what="f")


def test_fixed_parameters_are_not_settable() -> None:
    def sampler(n: int, generator: object, std: float = 1.0) -> None:
        pass

    out = validate_kwargs(sampler, {"std": 2}, what="s", fixed=("n", "generator"))
    assert out == {"std": 2.0}
    with pytest.raises(ValueError, match=r"unknown hyper-parameter\(s\) \['n'\].*\['std'\]"):
        validate_kwargs(sampler, {"n": 3}, what="s", fixed=("n", "generator"))


def test_omegaconf_nested_in_plain_dict() -> None:
    from omegaconf import OmegaConf

    out = validate_kwargs(Nested, {"grid": OmegaConf.create([[1], [2]])}, what="m")
    assert out["grid"] == [[1], [2]] and type(out["grid"]) is list


def test_missing_required_key() -> None:
    def fn(*, n: int, k: int = 1) -> None:
        pass

    with pytest.raises(ValueError, match="missing required hyper-parameter 'n' for f"):
        validate_kwargs(fn, {"k": 2}, what="f")
    assert hparam_defaults(fn) == {"k": 1}


def test_parent_parameters_stop_without_var_kwargs() -> None:
    class Sealed(Base):
        def __init__(self, depth: int = 1) -> None:
            super().__init__()

    assert hparam_defaults(Sealed) == {"depth": 1}
    with pytest.raises(ValueError, match=r"unknown hyper-parameter\(s\) \['lr'\]"):
        validate_kwargs(Sealed, {"lr": 0.1}, what="m")


def test_adapters_are_cached_per_parameter() -> None:
    validate_kwargs(Child, {"depth": 3}, what="m")
    before = _adapter.cache_info().hits
    validate_kwargs(Child, {"depth": 5}, what="m")
    assert _adapter.cache_info().hits == before + 1
    assert _adapter(Child, "depth") is _adapter(Child, "depth")
    assert _adapter(Child, "depth") is not _adapter(Child, "p")
