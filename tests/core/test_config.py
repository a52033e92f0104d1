"""Typed hyper-parameter validation (zoo.core.config)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pytest

from zoo.core.config import Interval, validate_kwargs


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
        ("p", float("nan"), "must not be NaN"),
        ("flag", 1, "flag=1 must be a bool"),
        ("sizes", [1, "a"], r"sizes\[1\]='a' must be an int"),
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
