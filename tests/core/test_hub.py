"""Push and pull checkpoints through the real huggingface_hub client and a local fake Hub.

Nothing of ours is mocked: ``zoo.core.hub`` talks HTTP to ``tests.helpers.fake_hub.FakeHub`` on
127.0.0.1 exactly as a process started with ``HF_ENDPOINT=<fake>``, ``HF_HUB_CACHE=<tmp>``
would (the fixture sets the environment *and* the ``huggingface_hub.constants`` computed from
it at import).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi, constants
from huggingface_hub.errors import RepositoryNotFoundError

import zoo
from tests.common import TINY_RUN
from tests.helpers.fake_hub import FakeHub, iter_routes, set_hub_env
from zoo.core.checkpoint import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, save_checkpoint
from zoo.core.hub import CHECKPOINT_FILES, download, push

REPO_ROOT = Path(__file__).resolve().parents[2]
PUSH_ROUTES = {
    "POST /api/repos/create",
    "POST /api/validate-yaml",
    "POST /api/{type}s/{repo}/preupload/{rev}",
    "POST /api/{type}s/{repo}/commit/{rev}",
}
PULL_ROUTES = {
    "GET /api/{type}s/{repo}/revision/{rev}",
    "GET /api/{type}s/{repo}/tree/{rev}",
    "HEAD /{repo}/resolve/{rev}/{path}",
    "GET /{repo}/resolve/{rev}/{path}",
}


def _model_name() -> str:
    names = zoo.list_models()
    if not names:
        pytest.skip("no model is registered yet: nothing to build a checkpoint from")
    return "gnn_nc" if "gnn_nc" in names else names[0]


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """A running fake Hub that the huggingface_hub client points at, with a tmp HF cache."""
    with FakeHub(tmp_path / "hub_storage", lifetime_s=120) as server:
        set_hub_env(monkeypatch, tmp_path, server.url)
        yield server
    assert not server.running


@pytest.fixture
def checkpoint(tmp_path: Path) -> tuple[zoo.core.ZooModule, Path]:
    """A fresh model (seeded random weights) saved as a checkpoint directory."""
    torch.manual_seed(0)
    model = zoo.create(_model_name())
    metrics = {"test/loss": 0.25, "test/acc": 0.75}
    directory = save_checkpoint(
        model, tmp_path / "ckpt", metrics=metrics, command="pytest tests/core/test_hub.py"
    )
    return model, directory


def _same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def _outputs(model: zoo.core.ZooModule) -> torch.Tensor | None:
    """The model's output on a tiny batch of its own data."""
    dm = zoo.create_datamodule(model, n_test=4, batch_size=4)
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
    with torch.no_grad():
        return model.eval()(inputs)


def test_push_then_load_online_then_offline(
    hub: FakeHub, checkpoint: tuple[zoo.core.ZooModule, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    model, directory = checkpoint
    url = push(directory, "org/net")  # endpoint from $HF_ENDPOINT
    sha = url.rsplit("/", 1)[-1]
    assert url == f"{hub.url}/org/net/commit/{sha}" and len(sha) == 40

    # The three files landed byte for byte, in one commit on top of the repo's initial one.
    files = hub.files("org/net")
    assert sorted(files) == sorted([*CHECKPOINT_FILES, ".gitattributes"])
    for name in CHECKPOINT_FILES:
        assert files[name] == (directory / name).read_bytes(), name
    state = hub.repo("org/net")
    assert state["branches"]["main"] == sha and len(state["commits"]) == 2
    assert state["commits"][sha]["summary"] == f"Upload zoo checkpoint {model.zoo_name}"
    assert hub.routes == PUSH_ROUTES | {"GET /api/agent-harnesses"} or hub.routes == PUSH_ROUTES

    # Pull through zoo.load: same weights, same outputs, same metrics; from the tmp HF cache.
    n_push = len(hub.requests)
    loaded = zoo.load("hf-hub:org/net")
    _same_state(model, loaded)
    out = _outputs(model)
    assert torch.equal(out, _outputs(loaded))
    assert loaded.zoo_metrics == {"test/loss": 0.25, "test/acc": 0.75}
    assert {f"{r.method} {r.route}" for r in hub.requests[n_push:]} == PULL_ROUTES
    # Every request names the library (the Hub's per-library download statistics).
    # (huggingface_hub's own once-a-day /api/agent-harnesses ping is not ours.)
    agents = {(r.route, r.user_agent) for r in hub.requests if r.route != "/api/agent-harnesses"}
    assert agents and all(f"zoo/{zoo.__version__}" in (a or "") for _, a in agents), agents
    snapshot = download("org/net")
    assert snapshot == Path(constants.HF_HUB_CACHE) / "models--org--net" / "snapshots" / sha
    assert sorted(p.name for p in snapshot.iterdir()) == sorted(CHECKPOINT_FILES)
    assert not hub.unhandled, hub.unhandled

    # Pushing the same directory again creates no commit (the client sees unchanged oids).
    assert push(directory, "org/net") == url
    assert len(hub.repo("org/net")["commits"]) == 2

    # Server stopped + HF_HUB_OFFLINE: served from the cache, by branch and by commit sha.
    hub.stop()
    n_before = len(hub.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    for ref in ("hf-hub:org/net", f"hf-hub:org/net@{sha}"):
        offline = zoo.load(ref)
        _same_state(model, offline)
        assert torch.equal(out, _outputs(offline))
    assert len(hub.requests) == n_before

    # A repo that was never downloaded: a clear error naming the id, the cache and the cause.
    with pytest.raises(
        FileNotFoundError, match=r"hf-hub:org/other is not in the local .*HF_HUB_OFFLINE"
    ):
        zoo.load("hf-hub:org/other")

    # Offline flag off but server down: the cache still serves the known snapshot.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    _same_state(model, zoo.load("hf-hub:org/net"))


def test_push_validates_before_any_request(hub: FakeHub, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="is not a zoo checkpoint"):
        push(tmp_path / "empty", "org/net")
    assert hub.requests == []


def test_invalid_card_metadata_is_rejected_before_upload(
    hub: FakeHub, checkpoint: tuple[zoo.core.ZooModule, Path]
) -> None:
    _, directory = checkpoint
    card = directory / CARD_NAME
    card.write_text(card.read_text().replace("license: mit", "license: [mit]", 1))
    with pytest.raises(ValueError, match=r"Invalid metadata in README\.md"):
        push(directory, "org/bad")
    assert "POST /api/{type}s/{repo}/commit/{rev}" not in hub.routes
    assert sorted(hub.files("org/bad")) == [".gitattributes"]  # created, nothing committed


def test_push_to_a_new_branch_leaves_main_alone(
    hub: FakeHub, checkpoint: tuple[zoo.core.ZooModule, Path]
) -> None:
    model, directory = checkpoint
    push(directory, "org/net")
    main_sha = hub.repo("org/net")["branches"]["main"]
    retrained = zoo.load(directory)
    with torch.no_grad():
        next(iter(retrained.parameters())).add_(1.0)
    v2 = save_checkpoint(retrained, directory.parent / "v2", metrics={"test/loss": 0.125})
    url = push(v2, "org/net", revision="v2", commit_message="retrained")
    state = hub.repo("org/net")
    assert state["branches"] == {"main": main_sha, "v2": url.rsplit("/", 1)[-1]}
    assert state["commits"][state["branches"]["v2"]]["parent"] == main_sha
    _same_state(model, zoo.load("hf-hub:org/net"))
    _same_state(retrained, zoo.load("hf-hub:org/net@v2"))
    assert zoo.load("hf-hub:org/net@v2").zoo_metrics == {"test/loss": 0.125}
    assert "POST /api/{type}s/{repo}/branch/{branch}" in hub.routes


def test_private_repo_needs_the_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, checkpoint: tuple[zoo.core.ZooModule, Path]
) -> None:
    model, directory = checkpoint
    with FakeHub(tmp_path / "private_hub", token="hf_secret", lifetime_s=60) as server:
        set_hub_env(monkeypatch, tmp_path, server.url)
        with pytest.raises(Exception, match="401"):
            push(directory, "org/priv", private=True)  # anonymous write
        push(directory, "org/priv", private=True, token="hf_secret")
        assert server.repo("org/priv")["private"] is True
        with pytest.raises(RepositoryNotFoundError):
            download("org/priv")  # anonymous read of a private repo
        _same_state(model, zoo.core.checkpoint.load(download("org/priv", token="hf_secret")))
        assert all(r.authorization in (None, "Bearer hf_secret") for r in server.requests)


def test_push_recipe_pushes_a_registered_name(
    hub: FakeHub, checkpoint: tuple[zoo.core.ZooModule, Path], tmp_path: Path
) -> None:
    model, directory = checkpoint
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    directory.rename(shipped / model.zoo_name)  # checkpoints/<name>, as train.py exports it
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    env = {**os.environ, "ZOO_CHECKPOINTS": str(shipped), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(REPO_ROOT / "recipes" / "push.py")]
    cmd += [f"checkpoint={model.zoo_name}", "repo_id=org/recipe", "commit_message=from the recipe"]
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    url = proc.stdout.strip().splitlines()[-1]
    sha = url.rsplit("/", 1)[-1]
    assert url == f"{hub.url}/org/recipe/commit/{sha}"
    assert list(workdir.iterdir()) == []  # Hydra wrote no outputs/, .hydra/ or log file

    files = hub.files("org/recipe")
    for name in (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME):
        assert files[name] == (shipped / model.zoo_name / name).read_bytes(), name
    assert hub.repo("org/recipe")["commits"][sha]["summary"] == "from the recipe"
    # The model card is on the Hub with its metadata, as the Hub API reports it.
    info = HfApi(endpoint=hub.url).model_info("org/recipe")
    assert info.sha == sha
    assert info.card_data.library_name == "zoo" and info.card_data.license == "mit"
    assert "zoo" in info.tags and "pytorch-lightning" in info.tags
    assert f"# `{model.zoo_name}`" in files[CARD_NAME].decode()
    assert not hub.unhandled, hub.unhandled


def test_fake_hub_serves_only_known_routes() -> None:
    with FakeHub(lifetime_s=30) as server:
        api = HfApi(endpoint=server.url, token=False)
        with pytest.raises(Exception, match="404"):
            api.list_models(limit=1).__next__()
        assert [r.path for r in server.unhandled] == ["/api/models"]
    assert not server.running and not server.root.exists()
    assert set(iter_routes()) >= PUSH_ROUTES | PULL_ROUTES


def test_train_recipe_pushes_its_export(hub: FakeHub, compose_cfg, tmp_path: Path) -> None:
    """`train.py ... hub=push hub.repo_id=org/name` pushes the export; it pulls back intact."""
    from train import train

    overrides = [
        "model=gnn_nc",
        "model.depth=2",
        "data.n_train=2",
        "data.n_val=1",
        "data.n_test=1",
        *TINY_RUN,
        "hub=push",
        "hub.repo_id=zoo-test/trained",
    ]
    out = train(compose_cfg("train", overrides, tmp_path / "run"))
    pulled = zoo.load("hf-hub:zoo-test/trained")
    assert pulled.zoo_metrics == pytest.approx(out["metrics"])
    for k, v in out["model"].state_dict().items():
        torch.testing.assert_close(pulled.state_dict()[k], v, rtol=0, atol=0)
    files = hub.files("zoo-test/trained")
    for f in CHECKPOINT_FILES:
        assert (out["export_dir"] / f).read_bytes() == files[f]
