"""Checkpoint writing and loading under hostile conditions: kills, races, bad files, bad refs.

Also a script: ``python tests/reliability/test_checkpoint_io.py '<json>'`` runs the scenarios
that fork (SIGKILL loops, concurrent processes) in one interpreter, so ``zoo`` is imported once.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import stat
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

import zoo
from tests.common import REPO_ROOT, TINY_RUN
from zoo.core import checkpoint
from zoo.core.checkpoint import (
    CARD_NAME,
    CONFIG_NAME,
    NO_EXCHANGE_ENV,
    WEIGHTS_NAME,
    check_export_target,
    export_id,
)

MODEL = "deepsets"


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` (and ``root``) → its bytes (``None`` for directories)."""
    if root.is_file():
        return {".": root.read_bytes()}
    out: dict[str, bytes | None] = {".": None}
    for p in sorted(root.rglob("*")):
        out[str(p.relative_to(root))] = None if p.is_dir() else p.read_bytes()
    return out


def models(n: int) -> list[zoo.core.ZooModule]:
    """``n`` models whose weights differ from each other and from a fresh initialisation."""
    out = []
    for seed in range(n):
        torch.manual_seed(seed)
        m = zoo.create(MODEL)
        with torch.no_grad():
            for p in m.parameters():
                p.add_(0.01 * torch.randn_like(p))
        out.append(m)
    return out


def weights(source: Path | zoo.core.ZooModule) -> dict[str, tuple[str, list[int], bytes]]:
    """Every tensor of a weights file (or a model's state dict): dtype, shape and raw bytes.

    (Files are not compared whole: safetensors orders the header metadata arbitrarily.)
    """
    state = load_file(source) if isinstance(source, Path) else source.state_dict()
    return {
        k: (
            str(t.dtype),
            list(t.shape),
            t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes(),
        )
        for k, t in state.items()
    }


def float_key(directory: Path) -> str:
    """The first float32 tensor of a checkpoint's weights."""
    state = load_file(directory / WEIGHTS_NAME)
    return next(k for k in sorted(state) if state[k].dtype == torch.float32)


def rewrite_weights(directory: Path, key: str, fn: Any) -> None:
    """Replace tensor ``key`` of ``directory``'s weights by ``fn(tensor)``, metadata kept."""
    state = load_file(directory / WEIGHTS_NAME)
    state[key] = fn(state[key])
    save_file(state, directory / WEIGHTS_NAME, metadata={"format": "pt", "zoo_model": MODEL})


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    """A checkpoint directory ``tmp_path/ck`` of a perturbed model."""
    return zoo.save(models(1)[0], tmp_path / "ck", metrics={"test/x": 0.5})


# ----------------------------------------------------------------------------- export targets


@pytest.mark.parametrize("kind", ["folder_with_user_files", "plain_file"])
def test_export_into_a_user_path_is_refused_before_training(
    kind: str, compose_cfg, tmp_path: Path
) -> None:
    from train import train

    target = tmp_path / "results"
    if kind == "plain_file":
        target.write_bytes(b"my measurements\n")
    else:
        (target / "sub").mkdir(parents=True)
        (target / "data.csv").write_text("a,b\n1,2\n")
        (target / "sub" / "notes.md").write_text("# mine\n")
        (target / CONFIG_NAME).write_text('{"mine": true}\n')
    before = snapshot(target)
    run = tmp_path / "run"
    cfg = compose_cfg("train", [f"model={MODEL}", *TINY_RUN, f"export_dir={target}"], run)
    with pytest.raises(FileExistsError, match="not a zoo checkpoint directory") as e:
        train(cfg)
    assert "Choose another export_dir" in str(e.value) and str(target) in str(e.value)
    assert ("it is a file" if kind == "plain_file" else "data.csv") in str(e.value)
    assert not (run / "checkpoints").exists(), "training started before the refusal"
    assert snapshot(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]


def test_hf_style_folder_with_checkpoint_file_names_is_not_ours(tmp_path: Path) -> None:
    """``config.json`` + ``model.safetensors`` + ``README.md`` of another library: refused."""
    target = tmp_path / "bert"
    target.mkdir()
    (target / CONFIG_NAME).write_text('{"architectures": ["BertModel"]}\n')
    save_file({"w": torch.ones(2)}, target / WEIGHTS_NAME)
    (target / CARD_NAME).write_text("# bert\n")
    before = snapshot(target)
    with pytest.raises(FileExistsError, match=r"config\.json is not a zoo config"):
        zoo.save(models(1)[0], target)
    assert snapshot(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bert"]


def test_symlink_target_and_file_parent_are_refused(saved: Path, tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(saved, target_is_directory=True)
    before = snapshot(saved)
    with pytest.raises(FileExistsError, match="it is a symlink"):
        zoo.save(models(1)[0], link)
    assert snapshot(saved) == before and link.is_symlink()
    (tmp_path / "afile").write_text("x")
    with pytest.raises(NotADirectoryError, match="afile is a file, not a directory"):
        check_export_target(tmp_path / "afile" / "ck")


def test_export_into_an_existing_empty_folder_works(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert check_export_target(tmp_path / "empty") == tmp_path / "empty"
    zoo.save(models(1)[0], tmp_path / "empty")
    assert zoo.load(tmp_path / "empty").zoo_name == MODEL


# ----------------------------------------------------------------------------- atomicity


def test_refused_saves_leave_the_previous_checkpoint_byte_identical(
    saved: Path, tmp_path: Path
) -> None:
    before = snapshot(saved)
    m = models(2)[1]
    with pytest.raises(TypeError, match="not JSON serializable"):
        zoo.save(m, saved, metrics={"test/a": object()})
    diverged = models(1)[0]
    with torch.no_grad():
        next(iter(diverged.parameters())).view(-1)[0] = float("nan")
    with pytest.raises(ValueError, match=r"holds NaN or inf \(did training diverge\?\)"):
        zoo.save(diverged, saved)
    with pytest.raises(TypeError, match=r"zoo\.save takes a zoo model"):
        zoo.save(torch.nn.Linear(2, 2), saved)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"zoo\.save takes a str or os\.PathLike \(a directory\)"):
        zoo.save(m, None)  # type: ignore[arg-type]
    (saved / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"it holds notes\.txt"):
        zoo.save(m, saved)
    assert snapshot(saved) == {**before, "notes.txt": b"mine"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]


def test_stale_leftovers_are_cleaned_by_the_next_save_and_do_not_block_it(
    saved: Path, tmp_path: Path
) -> None:
    partial = tmp_path / ".ck.tmp-0123abcd"  # a save killed while writing
    partial.mkdir()
    (partial / WEIGHTS_NAME).write_bytes((saved / WEIGHTS_NAME).read_bytes()[:100])
    legacy_tmp = tmp_path / ".ck.x7_k2m9q"  # tempfile.mkdtemp of older zoo versions
    legacy_tmp.mkdir()
    (legacy_tmp / CONFIG_NAME).write_text("{")
    legacy_old = tmp_path / f".ck.old-{os.getpid()}"  # blocked older saves: "not empty"
    legacy_old.mkdir()
    for f in (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME):
        (legacy_old / f).write_bytes((saved / f).read_bytes())
    (tmp_path / ".ck.lock").write_text("")  # left by a killed holder
    users = tmp_path / ".ck.backup"  # not ours: a name a save never makes, and other files
    users.mkdir()
    (users / "notes.txt").write_text("mine")
    before = snapshot(users)
    m = models(2)[1]
    zoo.save(m, saved)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ck.backup", "ck"]
    assert snapshot(users) == before
    loaded = zoo.load(saved)
    assert torch.equal(loaded.state_dict()[float_key(saved)], m.state_dict()[float_key(saved)])


def test_a_kill_between_the_fallback_renames_is_recovered(saved: Path, tmp_path: Path) -> None:
    """Without RENAME_EXCHANGE, a kill between the two renames leaves only ``.ck.old-*``."""
    before = snapshot(saved)
    aside = tmp_path / ".ck.old-0badcafe"
    os.rename(saved, aside)  # the state such a kill leaves
    loaded = zoo.load(saved)  # load puts it back
    assert loaded.zoo_metrics == {"test/x": 0.5}
    assert snapshot(saved) == before and not aside.exists()
    os.rename(saved, aside)
    m = models(2)[1]
    zoo.save(m, saved)  # so does the next save, before replacing it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]
    key = float_key(saved)
    assert torch.equal(zoo.load(saved).state_dict()[key], m.state_dict()[key])


@pytest.fixture(scope="module")
def forked(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The fork scenarios, run once in one worker process (50 kills per swap mode)."""
    root = tmp_path_factory.mktemp("forked")
    return run_worker({"root": str(root), "kills": 50, "saves": 10, "seed": 0})


def run_worker(args: dict[str, Any], timeout: int = 120) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    env.pop(NO_EXCHANGE_ENV, None)
    res = subprocess.run(
        [sys.executable, __file__, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=REPO_ROOT,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("mode", ["exchange", "fallback"])
def test_sigkill_during_export_keeps_a_loadable_checkpoint(
    mode: str, forked: dict[str, Any]
) -> None:
    check_kill_loop(forked[mode], kills=50, exchange=mode == "exchange")


@pytest.mark.slow
def test_sigkill_during_export_200_times(tmp_path: Path) -> None:
    out = run_worker({"root": str(tmp_path), "kills": 200, "saves": 50, "seed": 1}, timeout=300)
    for mode in ("exchange", "fallback"):
        check_kill_loop(out[mode], kills=200, exchange=mode == "exchange")


def check_kill_loop(out: dict[str, Any], kills: int, exchange: bool) -> None:
    assert out.get("error") is None, out.get("error")
    assert sum(out["seen"].values()) == kills  # every kill left an old or a new checkpoint
    assert out["seen"].get("new_a", 0) + out["seen"].get("new_b", 0) > 0, out
    assert out["kills_mid_save"] > 0, f"no kill landed inside a save: {out}"
    assert out["after_next_save"] == ["ck"]  # the next save removed every leftover
    if exchange:
        assert out["exchange_available"], "renameat2(RENAME_EXCHANGE) is unavailable here"
        assert out["missing_at_kill"] == 0  # the path was never absent, not even for a moment


def test_concurrent_process_saves_end_with_one_checkpoint_and_the_loser_is_told(
    forked: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from train import _report

    out = forked["concurrent"]
    assert out.get("error") is None, out.get("error")
    assert out["exit_codes"] == [0, 0]
    assert out["loads_during_saves"] > 0  # a reader always found a complete checkpoint
    assert out["after"] == ["ck"]
    assert len(out["winners"]) == 1 and out["weights_match_winner"]
    loser = out["last_ids"][1 - out["winners"][0]]
    target = Path(out["target"])
    _report({"test/x": 1.0}, target, None, 0.0, loser)
    text = capsys.readouterr().out
    assert "export superseded" in text and "no longer holds this run's" in text
    assert "checkpoint:" not in text
    _report({"test/x": 1.0}, target, None, 0.0, out["last_ids"][out["winners"][0]])
    assert f"checkpoint: {target}" in capsys.readouterr().out


def test_concurrent_thread_saves_are_serialised(tmp_path: Path) -> None:
    target = tmp_path / "ck"
    ms = models(2)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []
    last: dict[int, str] = {}

    def work(i: int) -> None:
        try:
            barrier.wait()
            for _ in range(8):
                zoo.save(ms[i], target)
                last[i] = ms[i].zoo_export_id
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]
    (winner,) = [i for i in (0, 1) if last[i] == export_id(target)]
    loaded = zoo.load(target)
    for k, v in ms[winner].state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)


def test_exported_files_have_normal_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        target = tmp_path / "new" / "ck"
        m = models(1)[0]
        for _ in range(2):  # a first export and a replacement
            zoo.save(m, target)
            assert stat.S_IMODE(target.stat().st_mode) == 0o755
            for f in (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME):
                assert stat.S_IMODE((target / f).stat().st_mode) == 0o644, f
        assert stat.S_IMODE(target.parent.stat().st_mode) == 0o755
    finally:
        os.umask(old)


# ----------------------------------------------------------------------------- strict loading


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.int64])
def test_weights_of_another_dtype_are_refused(dtype: torch.dtype, saved: Path) -> None:
    key = float_key(saved)
    rewrite_weights(saved, key, lambda t: t.to(dtype))
    before = snapshot(saved)
    found = str(dtype).removeprefix("torch.")
    with pytest.raises(ValueError) as e:
        zoo.load(saved)
    msg = str(e.value)
    assert str(saved / WEIGHTS_NAME) in msg and repr(key) in msg
    assert f"is {found} but model '{MODEL}' expects float32" in msg and "does not cast" in msg
    assert snapshot(saved) == before


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights_are_refused(value: float, saved: Path) -> None:
    key = float_key(saved)

    def poison(t: torch.Tensor) -> torch.Tensor:
        t = t.clone()
        t.view(-1)[0] = value
        return t

    rewrite_weights(saved, key, poison)
    before = snapshot(saved)
    with pytest.raises(ValueError, match=rf"{re.escape(repr(key))} holds NaN or inf"):
        zoo.load(saved)
    assert snapshot(saved) == before


@pytest.mark.parametrize("name", [CONFIG_NAME, WEIGHTS_NAME])
def test_symlinked_files_are_refused(name: str, saved: Path, tmp_path: Path) -> None:
    outside = tmp_path / f"elsewhere-{name}"
    os.rename(saved / name, outside)
    (saved / name).symlink_to(outside)
    before = snapshot(saved)
    with pytest.raises(ValueError, match=rf"{re.escape(str(saved / name))} is a symlink"):
        zoo.load(saved)
    assert snapshot(saved) == before


def test_hub_cache_snapshot_links_load_and_a_linked_directory_loads(
    saved: Path, tmp_path: Path
) -> None:
    repo = tmp_path / "models--org--ds"
    snap = repo / "snapshots" / "abc123"
    (repo / "blobs").mkdir(parents=True)
    snap.mkdir(parents=True)
    for i, f in enumerate((CONFIG_NAME, WEIGHTS_NAME, CARD_NAME)):
        (repo / "blobs" / f"blob{i}").write_bytes((saved / f).read_bytes())
        (snap / f).symlink_to(Path("..", "..", "blobs", f"blob{i}"))
    assert zoo.load(snap).zoo_name == MODEL  # how the HF cache stores a download
    (tmp_path / "linked").symlink_to(saved, target_is_directory=True)
    assert zoo.load(tmp_path / "linked").zoo_name == MODEL
    (snap / WEIGHTS_NAME).unlink()
    (snap / WEIGHTS_NAME).symlink_to(saved / WEIGHTS_NAME)  # out of the cache: refused
    with pytest.raises(ValueError, match="is a symlink"):
        zoo.load(snap)


def test_invalid_json_names_the_file_and_line(saved: Path) -> None:
    (saved / CONFIG_NAME).write_text('{\n  "model": {"name": "deepsets",\n  oops\n}\n')
    before = snapshot(saved)
    path = re.escape(str(saved / CONFIG_NAME))
    with pytest.raises(ValueError, match=rf"{path}: invalid JSON at line 3, column 3"):
        zoo.load(saved)
    with pytest.raises(ValueError, match=r"re-export it with zoo\.save"):
        checkpoint.read_config(saved)
    assert snapshot(saved) == before


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_safetensors_names_the_path(damage: str, saved: Path) -> None:
    data = (saved / WEIGHTS_NAME).read_bytes()
    bad = data[: len(data) // 2] if damage == "truncated" else b"\x00" * 8 + b"garbage"
    (saved / WEIGHTS_NAME).write_bytes(bad)
    before = snapshot(saved)
    path = re.escape(str(saved / WEIGHTS_NAME))
    with pytest.raises(ValueError, match=rf"{path} is not a readable safetensors file"):
        zoo.load(saved)
    assert snapshot(saved) == before


@pytest.mark.parametrize("ref", ["./nope", "a/b", "nope/", "~/no-such-zoo-checkpoint"])
def test_missing_path_like_refs_say_no_such_directory(
    ref: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=rf"no such checkpoint directory: {re.escape(ref)}"):
        zoo.load(ref)
    with pytest.raises(FileNotFoundError, match="no such checkpoint directory"):
        zoo.load(tmp_path / "nope")  # any os.PathLike is a path
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        zoo.load("nope")  # a bare name is still a model name


def test_a_file_given_as_checkpoint_directory(saved: Path) -> None:
    with pytest.raises(NotADirectoryError, match="is a file, not a checkpoint directory"):
        zoo.load(saved / WEIGHTS_NAME)


@pytest.mark.parametrize(
    ("ref", "error", "message"),
    [
        (None, TypeError, "got NoneType"),
        (123, TypeError, "got int"),
        (b"ck", TypeError, "got bytes"),
        ("", ValueError, "got an empty string"),
    ],
)
def test_refs_that_are_not_names_or_paths(ref: Any, error: type, message: str) -> None:
    with pytest.raises(error) as e:
        zoo.load(ref)
    assert message in str(e.value)
    if error is TypeError:
        assert "zoo.load takes a str or os.PathLike (a model name" in str(e.value)


# ----------------------------------------------------------------------------- forked worker


def _worker(args: dict[str, Any]) -> dict[str, Any]:
    """Run the fork scenarios under ``args["root"]``; errors are reported, not raised."""
    root = Path(args["root"])
    out: dict[str, Any] = {}
    for name, fn in (
        ("exchange", lambda d: _kill_loop(d, args["kills"], args["seed"], exchange=True)),
        ("fallback", lambda d: _kill_loop(d, args["kills"], args["seed"], exchange=False)),
        ("concurrent", lambda d: _concurrent(d, args["saves"])),
    ):
        start = time.perf_counter()
        try:
            out[name] = fn(root / name)
        except Exception:
            out[name] = {"error": traceback.format_exc()}
        out[name]["seconds"] = round(time.perf_counter() - start, 2)
    return out


def _kill_loop(root: Path, kills: int, seed: int, exchange: bool) -> dict[str, Any]:
    """SIGKILL a child that saves to one path in a tight loop, ``kills`` times; check each time.

    After each kill the path must load and hold the old or one of the new models, exactly.
    """
    if exchange:
        os.environ.pop(NO_EXCHANGE_ENV, None)
    else:
        os.environ[NO_EXCHANGE_ENV] = "1"
    named = dict(zip(("old", "new_a", "new_b"), models(3)))
    want = {k: weights(m) for k, m in named.items()}
    area = root / "area"
    area.mkdir(parents=True)
    target = zoo.save(named["old"], area / "ck")
    # Kill within 0-30 ms, or within 2.5 saves where saves are slower (fsync on a busy disk),
    # so that some kills land after a save completed and some inside one.
    scratch = root / "scratch"
    start = time.perf_counter()
    for _ in range(3):
        zoo.save(named["old"], scratch)
    longest = max(0.03, 2.5 * (time.perf_counter() - start) / 3)
    rng = random.Random(seed)
    seen: Counter[str] = Counter()
    missing = mid_save = 0
    for i in range(kills):
        first, then = ("new_a", "new_b") if i % 2 == 0 else ("new_b", "new_a")
        pid = os.fork()
        if pid == 0:  # the child saves until it is killed
            try:
                while True:
                    zoo.save(named[first], target)
                    zoo.save(named[then], target)
            finally:
                os._exit(1)
        time.sleep(rng.uniform(0.0, longest))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        missing += not os.path.lexists(target)
        mid_save += any(n != "ck" for n in os.listdir(area))
        loaded = zoo.load(target)
        got = weights(target / WEIGHTS_NAME)
        which = [k for k, v in want.items() if v == got]
        if len(which) != 1:
            raise AssertionError(f"the weights at {target} are none of the saved models")
        for k, v in named[which[0]].state_dict().items():
            if not torch.equal(loaded.state_dict()[k], v):
                raise AssertionError(f"loaded {k} differs from the {which[0]} model")
        seen[which[0]] += 1
    zoo.save(named["new_a"], target)
    return {
        "seen": dict(seen),
        "missing_at_kill": missing,
        "kills_mid_save": mid_save,
        "after_next_save": sorted(os.listdir(area)),
        "exchange_available": checkpoint._renameat2() is not None,
        "longest_delay_ms": round(1000 * longest, 1),
    }


def _concurrent(root: Path, saves: int) -> dict[str, Any]:
    """Two processes save ``saves`` times each to one path while this one keeps loading it."""
    os.environ.pop(NO_EXCHANGE_ENV, None)
    ms = models(2)
    area, ids = root / "area", root / "ids"
    area.mkdir(parents=True)
    ids.mkdir()
    target = area / "ck"
    start = time.monotonic() + 0.2
    pids = []
    for i, m in enumerate(ms):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                time.sleep(max(0.0, start - time.monotonic()))
                for _ in range(saves):
                    zoo.save(m, target)
                    (ids / str(i)).write_text(m.zoo_export_id)
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        pids.append(pid)
    codes: dict[int, int] = {}
    loads = 0
    while len(codes) < len(pids):
        for pid in pids:
            if pid not in codes:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    codes[pid] = os.waitstatus_to_exitcode(status)
        if os.path.lexists(target):
            zoo.load(target)
            loads += 1
    last = [(ids / str(i)).read_text() for i in range(len(ms))]
    winners = [i for i, x in enumerate(last) if x == export_id(target)]
    return {
        "exit_codes": [codes[p] for p in pids],
        "loads_during_saves": loads,
        "after": sorted(os.listdir(area)),
        "last_ids": last,
        "winners": winners,
        "weights_match_winner": len(winners) == 1
        and weights(target / WEIGHTS_NAME) == weights(ms[winners[0]]),
        "target": str(target),
    }


if __name__ == "__main__":
    print(json.dumps(_worker(json.loads(sys.argv[1]))))
