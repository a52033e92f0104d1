"""The import graph runs one way: recipes → families → zoo.sets → zoo.core.

Walks every module of the package with ``ast`` (no import side effects) and fails on an import
that points the other way: ``zoo.core`` knows no set or family, ``zoo.sets`` no family, and a
family imports neither another family nor the top-level ``zoo`` package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "zoo"
FAMILIES = sorted(
    p.name
    for p in PACKAGE.iterdir()
    if (p / "__init__.py").exists() and p.name not in ("core", "sets")
)
LAYER = {"core": 0, "sets": 1, **{f: 2 for f in FAMILIES}}


def _imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every absolute import in ``path``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
    return out


def violations(path: Path) -> list[str]:
    """Imports of ``path`` (inside zoo/<part>/) that break the layering."""
    part = path.relative_to(PACKAGE).parts[0]
    bad = []
    for line, mod in _imports(path):
        parts = mod.split(".")
        if parts[0] != "zoo":
            continue
        where = f"{path.relative_to(PACKAGE.parent)}:{line} imports {mod}"
        if len(parts) == 1 or parts[1] in ("__init__", "__main__"):
            bad.append(f"{where} (the top-level package)")
        elif parts[1] not in LAYER:
            bad.append(f"{where} (unknown part of the package)")
        elif parts[1] != part and LAYER[parts[1]] >= LAYER[part]:
            bad.append(f"{where} ({part} sits below or beside {parts[1]})")
    return bad


def test_there_are_families() -> None:
    assert {"ansatz", "attention", "graphs", "hierarchical"} <= set(FAMILIES)


@pytest.mark.parametrize("part", ["core", "sets", *FAMILIES])
def test_imports_run_one_way(part: str) -> None:
    bad = [v for f in sorted((PACKAGE / part).rglob("*.py")) for v in violations(f)]
    assert not bad, "\n".join(bad)


def test_the_check_catches_a_violation(tmp_path: Path) -> None:
    fake = PACKAGE / "graphs" / "_layout_probe.py"
    try:
        fake.write_text(
            "import zoo\nfrom zoo.attention import targets\nfrom zoo.core import data\n"
        )
        assert len(violations(fake)) == 2
    finally:
        fake.unlink()
    core_probe = PACKAGE / "core" / "_layout_probe.py"
    try:
        core_probe.write_text("from zoo.sets import SetDataModule\n")
        assert len(violations(core_probe)) == 1
    finally:
        core_probe.unlink()
