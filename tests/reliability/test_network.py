"""The network fails in bounded time with messages that say what, why and how to go offline.

Every case runs against real loopback sockets: a *silent* server (a listening socket that
accepts connections and never answers), a *closed* port (connection refused), or the fake Hub
(:mod:`tests.helpers.fake_hub`), optionally stalling one route. Nothing reaches huggingface.co
or wandb.ai. Timeouts are configured to 1-2 s and every case asserts a bound well below what the
clients would take on their own (no timeout at all for most Hub requests, ~35 s of retries for
the stalled commit, ~12 s for W&B's login and init).
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from huggingface_hub import constants

import zoo
from tests.common import RECIPES, TINY_RUN
from tests.helpers.fake_hub import FakeHub, set_hub_env
from zoo.core.checkpoint import save_checkpoint
from zoo.core.hub import CHECKPOINT_FILES, HubUnreachableError, download, push

STALL_PREUPLOAD = "POST /api/{type}s/{repo}/preupload/{rev}"
STALL_FILE_GET = "GET /{repo}/resolve/{rev}/{path}"
SMALL_GNN = ["model=gnn_nc", "model.depth=2", "data.n_train=2", "data.n_val=1", "data.n_test=1"]


class SilentServer:
    """A TCP server on 127.0.0.1 that accepts every connection and never sends a byte."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self.accepted = 0
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:  # closed
                return
            self.accepted += 1
            self._conns.append(conn)  # kept open, never read, never answered

    def close(self) -> None:
        self._sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._sock.close()
        for conn in self._conns:
            conn.close()
        self._thread.join(timeout=5)


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


@pytest.fixture
def closed_url() -> str:
    """The URL of a loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(zoo.create("gnn_nc", depth=2), tmp_path / "ckpt", metrics={"x": 1.0})


def _digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def _timed(fn, *args, **kwargs) -> tuple[BaseException, float]:
    """``(the exception fn raised, seconds it took)``; fails the test if fn returns."""
    start = time.monotonic()
    with pytest.raises(BaseException) as info:
        fn(*args, **kwargs)
    return info.value, time.monotonic() - start


# ---------------------------------------------------------------------------------- Hub push


def test_push_to_a_closed_port_is_refused_with_the_offline_way(
    checkpoint: Path, closed_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_hub_env(monkeypatch, tmp_path, closed_url)
    before = _digest(checkpoint)
    err, took = _timed(push, checkpoint, "org/net", timeout=2)
    assert isinstance(err, HubUnreachableError) and isinstance(err, ConnectionError)
    msg = str(err)
    assert f"push of {checkpoint} to org/net failed" in msg
    assert f"the Hub at {closed_url} is unreachable: connection refused" in msg
    assert f"zoo.load({str(checkpoint)!r})" in msg  # how to keep working offline
    assert took < 10
    assert _digest(checkpoint) == before


def test_push_to_a_silent_server_times_out(
    checkpoint: Path, silent: SilentServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_hub_env(monkeypatch, tmp_path, silent.url)
    before = _digest(checkpoint)
    err, took = _timed(push, checkpoint, "org/net", timeout=2)
    assert isinstance(err, HubUnreachableError)
    msg = str(err)
    assert f"push of {checkpoint} to org/net failed: the Hub at {silent.url}" in msg
    assert "did not answer within 2 s (timed out)" in msg
    assert "ZOO_HUB_TIMEOUT" in msg
    assert 1.5 < took < 10 and silent.accepted >= 1
    assert _digest(checkpoint) == before


def test_push_stalled_mid_commit_is_not_retried(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client retries a timed-out preupload 5 times with backoff (~35 s at 2 s): not here."""
    with FakeHub(tmp_path / "hub", stall={STALL_PREUPLOAD}, lifetime_s=60) as hub:
        set_hub_env(monkeypatch, tmp_path, hub.url)
        err, took = _timed(push, checkpoint, "org/net", timeout=2)
        stalled = [r for r in hub.requests if f"{r.method} {r.route}" == STALL_PREUPLOAD]
        assert len(stalled) == 1  # sent once, never again
        assert sorted(hub.files("org/net")) == [".gitattributes"]  # nothing committed
    assert isinstance(err, HubUnreachableError)
    assert "did not answer within 2 s" in str(err) and "org/net" in str(err)
    assert took < 10


def test_hub_timeout_comes_from_the_environment(
    checkpoint: Path, silent: SilentServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_hub_env(monkeypatch, tmp_path, silent.url)
    monkeypatch.setenv("ZOO_HUB_TIMEOUT", "1")
    err, took = _timed(push, checkpoint, "org/net")
    assert isinstance(err, HubUnreachableError) and "within 1 s" in str(err)
    assert took < 6
    monkeypatch.setenv("ZOO_HUB_TIMEOUT", "soon")
    accepted = silent.accepted
    with pytest.raises(ValueError, match=r"ZOO_HUB_TIMEOUT must be a number of seconds > 0"):
        push(checkpoint, "org/net")
    with pytest.raises(ValueError, match=r"timeout must be a number of seconds > 0, got -1"):
        download("org/net", timeout=-1)
    assert silent.accepted == accepted  # refused before any connection


# ---------------------------------------------------------------------------------- Hub pull


def test_download_from_a_silent_server_times_out(
    silent: SilentServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_hub_env(monkeypatch, tmp_path, silent.url)
    err, took = _timed(download, "org/net", timeout=2)
    assert isinstance(err, HubUnreachableError)
    msg = str(err)
    assert f"download of hf-hub:org/net failed: the Hub at {silent.url} is unreachable" in msg
    assert "did not answer within 2 s (timed out)" in msg
    assert "HF_HUB_OFFLINE=1" in msg and str(tmp_path / "hf_cache") in msg
    assert 1.5 < took < 10


def test_download_from_a_closed_port_says_how_to_go_offline(
    closed_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_hub_env(monkeypatch, tmp_path, closed_url)
    err, took = _timed(zoo.load, "hf-hub:org/net")
    assert isinstance(err, HubUnreachableError)
    msg = str(err)
    assert "download of hf-hub:org/net failed" in msg and "connection refused" in msg
    assert "set HF_HUB_OFFLINE=1 once hf-hub:org/net is in the local Hugging Face cache" in msg
    assert "load a local checkpoint directory" in msg and "checkpoints/<name>" in msg
    assert took < 10


def test_download_stalled_file_transfer_is_not_retried(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Metadata answers, file bodies never come: one GET per file, no resume, no retry."""
    with FakeHub(tmp_path / "hub", stall={STALL_FILE_GET}, lifetime_s=60) as hub:
        set_hub_env(monkeypatch, tmp_path, hub.url)
        push(checkpoint, "org/net", timeout=5)
        err, took = _timed(download, "org/net", timeout=2)
        gets = [r.path for r in hub.requests if f"{r.method} {r.route}" == STALL_FILE_GET]
    assert isinstance(err, HubUnreachableError) and "did not answer within 2 s" in str(err)
    assert sorted(gets) == sorted(set(gets)) and len(gets) == len(CHECKPOINT_FILES)
    assert took < 10


def test_cached_snapshot_serves_offline_and_when_the_hub_is_silent(
    checkpoint: Path,
    silent: SilentServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with FakeHub(tmp_path / "hub", lifetime_s=60) as hub:
        set_hub_env(monkeypatch, tmp_path, hub.url)
        push(checkpoint, "org/net", timeout=5)
        cached = download("org/net", timeout=5)
    original = {f: (checkpoint / f).read_bytes() for f in CHECKPOINT_FILES}
    assert {f: (cached / f).read_bytes() for f in CHECKPOINT_FILES} == original

    # The Hub now never answers. HF_HUB_OFFLINE=1: the cache, at once, without a connection.
    monkeypatch.setenv("HF_ENDPOINT", silent.url)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    start = time.monotonic()
    assert download("org/net", timeout=2) == cached
    model = zoo.load("hf-hub:org/net")
    assert time.monotonic() - start < 5 and silent.accepted == 0
    assert model.zoo_metrics == {"x": 1.0}

    # Without the flag: the cached snapshot after one timeout, with a warning saying why.
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with caplog.at_level(logging.WARNING, logger="zoo.core.hub"):
        start = time.monotonic()
        assert download("org/net", timeout=2) == cached
        took = time.monotonic() - start
    assert 1.5 < took < 10 and silent.accepted >= 1
    assert any(
        "unreachable" in r.getMessage() and "using the cached snapshot" in r.getMessage()
        for r in caplog.records
    )


# ---------------------------------------------------------------------------------- push recipe


def _recipe_main(name: str):
    """A recipe's task function, without Hydra's command-line wrapper."""
    return importlib.import_module(name).main.__wrapped__


def test_push_recipe_against_a_silent_server_exits_with_one_error_line(
    checkpoint: Path,
    silent: SilentServer,
    compose_cfg,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    set_hub_env(monkeypatch, tmp_path, silent.url)
    cfg = compose_cfg(
        "push", [f"checkpoint={checkpoint}", "repo_id=org/net", "timeout=1"], tmp_path
    )
    err, took = _timed(_recipe_main("push"), cfg)
    assert isinstance(err, SystemExit)  # a str code: Python prints it on stderr and exits 1
    message = str(err.code)
    assert message.startswith(f"error: push of {checkpoint} to org/net failed: the Hub at ")
    assert "did not answer within 1 s (timed out)" in message and "\n" not in message
    assert took < 10


@pytest.mark.slow
def test_push_recipe_subprocess_against_a_silent_server_exits_1(
    checkpoint: Path, silent: SilentServer, tmp_path: Path
) -> None:
    home = tmp_path / "hf_home"
    home.mkdir()
    (home / ".agent_harnesses.json").write_text('{"standardEnvVars": [], "harnesses": {}}')
    env = {
        **os.environ,
        "HF_ENDPOINT": silent.url,
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(tmp_path / "hf_cache"),
        "OMP_NUM_THREADS": "1",
    }
    env.pop("HF_HUB_OFFLINE", None)
    cmd = [sys.executable, str(RECIPES / "push.py"), f"checkpoint={checkpoint}"]
    cmd += ["repo_id=org/net", "timeout=1"]
    before = _digest(checkpoint)
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert f"error: push of {checkpoint} to org/net failed: the Hub at {silent.url}" in proc.stderr
    assert "did not answer within 1 s (timed out)" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert _digest(checkpoint) == before


# ---------------------------------------------------------------------------------- W&B


@pytest.fixture
def wandb_online_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """A (dummy) W&B API key and a console that is not silenced, as a user has it.

    W&B reads its environment once per process: its session is torn down before (so this
    environment is the one it reads) and after (so no later test inherits it).
    """
    import wandb

    wandb.teardown()
    monkeypatch.setenv("WANDB_API_KEY", "0123456789abcdef0123456789abcdef01234567")
    monkeypatch.delenv("WANDB_SILENT", raising=False)  # the login banner is part of the bound
    monkeypatch.delenv("WANDB_INIT_TIMEOUT", raising=False)
    # Lightning sets WANDB_MODE=dryrun for offline runs: set then delete, so it is restored unset.
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.delenv("WANDB_MODE")
    yield monkeypatch
    wandb.teardown()


@pytest.mark.parametrize("server", ["silent", "closed"])
def test_wandb_unreachable_falls_back_offline_and_the_run_completes(
    server: str,
    request: pytest.FixtureRequest,
    wandb_online_env: pytest.MonkeyPatch,
    compose_cfg,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from train import train

    url = request.getfixturevalue("silent").url if server == "silent" else None
    url = url or request.getfixturevalue("closed_url")
    wandb_online_env.setenv("WANDB_BASE_URL", url)
    overrides = [*SMALL_GNN, *TINY_RUN, "logger=wandb", "logger.init_timeout=2"]
    cfg = compose_cfg("train", overrides, tmp_path / "run")
    start = time.time()
    with caplog.at_level(logging.WARNING, logger="zoo.recipes"):
        out = train(cfg)
    run_dir = out["wandb_dir"]
    assert run_dir is not None and run_dir.name.startswith("offline-run-")
    assert list(run_dir.glob("run-*.wandb")), "the offline run wrote no .wandb log"
    assert zoo.load(out["export_dir"]).zoo_metrics == pytest.approx(out["metrics"])
    fallback = [r for r in caplog.records if "W&B could not start online" in r.getMessage()]
    assert len(fallback) == 1 and fallback[0].levelno == logging.WARNING
    line = fallback[0].getMessage()
    assert f"at {url} within 2 s" in line and f"wandb sync {run_dir}" in line
    assert ("deadline exceeded" if server == "silent" else "connection refused") in line
    # Offline within the bound: 2 s online attempt + W&B's own startup (not its ~12 s alone).
    assert fallback[0].created - start < 10


def test_wandb_without_a_key_stays_offline_without_connecting(
    silent: SilentServer, monkeypatch: pytest.MonkeyPatch, compose_cfg, tmp_path: Path
) -> None:
    import wandb
    from train import build_logger

    monkeypatch.setenv("WANDB_BASE_URL", silent.url)
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.delenv("WANDB_MODE")
    cfg = compose_cfg("train", [*SMALL_GNN, "logger=wandb"], tmp_path)
    run = build_logger(cfg).experiment
    assert run.offline and Path(run.dir).parent.name.startswith("offline-run-")
    wandb.finish()
    assert silent.accepted == 0
    with pytest.raises(ValueError, match=r"init_timeout \(or \$WANDB_INIT_TIMEOUT\) must be"):
        build_logger(compose_cfg("train", ["logger=wandb", "logger.init_timeout=0"], tmp_path))


# ---------------------------------------------------------------------------------- eval recipe


@pytest.mark.parametrize("ref", ["does/not/exist", "./x", "'~/x'", "x/"])
def test_eval_of_a_missing_directory_exits_1(
    ref: str, compose_cfg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Path-like references are never taken for model names (``~`` needs Hydra quoting)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cfg = compose_cfg("eval", [f"checkpoint={ref}"], tmp_path)
    with pytest.raises(SystemExit) as info:
        _recipe_main("eval")(cfg)
    message = str(info.value.code)
    assert message.startswith("error: no such checkpoint directory: ")
    assert Path(ref.strip("'")).name in message and "unknown model" not in message


def test_eval_of_a_typo_lists_the_model_names(compose_cfg, tmp_path: Path) -> None:
    cfg = compose_cfg("eval", ["checkpoint=gnn_ncc"], tmp_path)
    with pytest.raises(SystemExit) as info:
        _recipe_main("eval")(cfg)
    message = str(info.value.code)
    assert message.startswith("error: unknown model 'gnn_ncc'")
    assert "gnn_nc" in message and "Valid models" in message
