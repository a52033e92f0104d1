"""The figure toolkit: one saver (PNG + PDF at one dpi), quick_fit/quick_test, seed bands,
and run_figure's validation."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path

import matplotlib
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

import zoo
import zoo.core.callbacks
from zoo.core.figures import (
    DPI,
    FIGURES,
    StepTrace,
    new_figure,
    plot_seeds,
    quick_fit,
    quick_test,
    register_figure,
    run_figure,
    save_figure,
    seed_everything,
    seeds_note,
)


def _tiny_deepsets(seed: int = 0, **hparams: object) -> tuple[zoo.core.ZooModule, object]:
    seed_everything(seed)
    model = zoo.create("deepsets", width=4, **hparams)
    dm = zoo.create_datamodule("deepsets", n_train=64, n_val=16, n_test=16, batch_size=32)
    return model, dm


def _train_loss(model: zoo.core.ZooModule, dm: object) -> float:
    with torch.no_grad():
        return float(model.loss(dm.split("train")))


# -- saving -------------------------------------------------------------------------------
def test_save_figure_writes_png_and_pdf_at_one_dpi(tmp_path: Path) -> None:
    fig, ax = new_figure(figsize=(2, 1.5))
    ax.plot([0, 1], [1, 0])
    paths = save_figure(fig, tmp_path / "sub", "line")
    assert paths == [tmp_path / "sub" / "line.png", tmp_path / "sub" / "line.pdf"]
    with Image.open(paths[0]) as png:
        assert png.info["dpi"] == pytest.approx((DPI, DPI), abs=0.01)
    assert paths[1].read_bytes().startswith(b"%PDF")
    again = save_figure(new_figure(figsize=(2, 1.5))[0], tmp_path / "again", "line")
    assert b"CreationDate" not in again[1].read_bytes()  # reproducible files


def test_save_figure_closes_a_pyplot_figure(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    fig = plt.figure()
    num = fig.number
    save_figure(fig, tmp_path, "pyplot", formats=("png",))
    assert not plt.fignum_exists(num)


def test_importing_the_callbacks_sets_no_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple] = []
    monkeypatch.setattr(matplotlib, "use", lambda *a, **k: calls.append(a))
    importlib.reload(zoo.core.callbacks)
    assert calls == []
    assert isinstance(new_figure(figsize=(1, 1))[0], Figure)


def test_plot_seeds_draws_a_band_only_for_several_seeds() -> None:
    _, ax = new_figure(figsize=(2, 2))
    line = plot_seeds(ax, [1, 2, 3], [[1.0, 2.0, 3.0]], label="one")
    assert line.get_ydata().tolist() == [1.0, 2.0, 3.0] and len(ax.collections) == 0
    line = plot_seeds(ax, [1, 2], [[0.0, 2.0], [2.0, 4.0]], "s--")
    assert line.get_ydata().tolist() == [1.0, 3.0] and len(ax.collections) == 1
    assert seeds_note([3]) == "seed 3"
    assert seeds_note([0, 1]) == "mean of 2 seeds, band min–max"


# -- training -----------------------------------------------------------------------------
def test_quick_fit_lowers_the_loss_and_is_deterministic() -> None:
    barely, dm = _tiny_deepsets(lr=1e-2)
    quick_fit(barely, dm, max_steps=1)
    trained, dm = _tiny_deepsets(lr=1e-2)
    trainer = quick_fit(trained, dm, max_epochs=20)
    assert trainer.global_step == 40 and not trained.training
    assert _train_loss(trained, dm) < 0.8 * _train_loss(barely, dm)  # 0.66 vs 1.03
    again, dm2 = _tiny_deepsets(lr=1e-2)
    quick_fit(again, dm2, max_epochs=20)
    for (k, a), b in zip(trained.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), k
    metrics = quick_test(trained, dm)
    assert set(metrics) >= {"test/nmse", "test/mse"} and all(
        isinstance(v, float) for v in metrics.values()
    )


def test_quick_fit_uses_the_models_schedule_and_a_step_budget() -> None:
    model, dm = _tiny_deepsets(lr=1e-2, scheduler="cosine")
    trace = StepTrace(lambda m: float(m.trainer.optimizers[0].param_groups[0]["lr"]), 2)
    trainer = quick_fit(model, dm, max_steps=6, callbacks=[trace])
    assert trainer.global_step == 6
    assert trace.steps == [0, 2, 4, 6]
    assert trace.values[0] == pytest.approx(1e-2) and trace.values[-1] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="max_epochs or max_steps"):
        quick_fit(model, dm)


# -- run_figure ---------------------------------------------------------------------------
@pytest.fixture
def toy_figures() -> Iterator[None]:
    @register_figure("_toy_line")
    def toy_line(*, slope: float = 1.0, seeds: tuple[int, ...] = (0,)) -> Figure:
        fig, ax = new_figure(figsize=(2, 2))
        plot_seeds(ax, [0, 1], [[0.0, slope + s] for s in seeds])
        return fig

    @register_figure("_toy_pair")
    def toy_pair() -> dict[str, Figure]:
        return {"_toy_a": new_figure(figsize=(1, 1))[0], "_toy_b": new_figure(figsize=(1, 1))[0]}

    @register_figure("_toy_paths")
    def toy_paths() -> list[Path]:
        return [Path("old-style.png")]

    yield
    for name in ("_toy_line", "_toy_pair", "_toy_paths"):
        FIGURES.remove(name)


@pytest.mark.usefixtures("toy_figures")
def test_run_figure_validates_then_saves_what_the_figure_returns(tmp_path: Path) -> None:
    paths = run_figure("_toy_line", tmp_path, slope=2, seeds=[0, 1])
    assert [p.name for p in paths] == ["_toy_line.png", "_toy_line.pdf"]
    assert all(p.stat().st_size > 0 for p in paths)
    paths = run_figure("_toy_pair", tmp_path)
    assert [p.name for p in paths] == ["_toy_a.png", "_toy_a.pdf", "_toy_b.png", "_toy_b.pdf"]
    with pytest.raises(ValueError, match=r"unknown.*'slop'.*figure '_toy_line'.*slope"):
        run_figure("_toy_line", tmp_path, slop=2.0)
    with pytest.raises(ValueError, match="slope"):
        run_figure("_toy_line", tmp_path, slope="steep")
    with pytest.raises(ValueError, match="at least one seed"):
        run_figure("_toy_line", tmp_path, seeds=[])
    with pytest.raises(ValueError, match="unknown figure '_toy_lin'"):
        run_figure("_toy_lin", tmp_path)
    with pytest.raises(TypeError, match="must return a Figure"):
        run_figure("_toy_paths", tmp_path)
