"""Registry of paper-figure reproductions, run by ``recipes/reproduce.py fig=<name>``.

A family registers a function ``fn(out_dir: Path, **params) -> list[Path]`` that trains or
evaluates whatever the figure needs, saves PNG(s) under ``out_dir`` and returns their paths::

    @register_figure("gnn_nc_depth")
    def nc1_across_layers(out_dir: Path, *, epochs: int = 8, seed: int = 0) -> list[Path]: ...

Its parameters (with defaults) mirror ``recipes/configs/fig/<name>.yaml``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from zoo.core.registry import Registry

__all__ = ["FIGURES", "get_figure", "list_figures", "register_figure"]

FigureFn = Callable[..., list[Path]]
FIGURES: Registry[FigureFn] = Registry("figure")


def register_figure(name: str) -> Callable[[FigureFn], FigureFn]:
    """Decorator registering a figure function under ``name``."""
    return FIGURES.register(name)


def list_figures() -> list[str]:
    """Sorted registered figure names."""
    return FIGURES.names()


def get_figure(name: str) -> FigureFn:
    """The figure function ``name``; unknown names list the valid ones."""
    return FIGURES.get(name)


def run_figure(name: str, out_dir: str | Path, **params: Any) -> list[Path]:
    """Validate ``params`` against the figure's signature, then produce it under ``out_dir``."""
    from zoo.core.config import validate_kwargs

    fn = get_figure(name)
    kwargs = validate_kwargs(fn, {"out_dir": str(out_dir), **params}, what=f"figure {name!r}")
    kwargs["out_dir"] = Path(kwargs["out_dir"])
    kwargs["out_dir"].mkdir(parents=True, exist_ok=True)
    return fn(**kwargs)
