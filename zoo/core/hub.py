"""Push checkpoint directories to the Hugging Face Hub and pull them back through the HF cache.

A Hub repository holds exactly the three files of a checkpoint directory (``config.json``,
``model.safetensors`` and the model card ``README.md``, see :mod:`zoo.core.checkpoint`).

* :func:`push` creates the repository if needed and uploads the three files in **one** commit
  with ``HfApi.create_commit``: the client first checks the model card's YAML metadata with the
  Hub (``/api/validate-yaml``), then asks how to upload each file (``preupload``), then sends
  the commit. (``upload_folder`` is not used: with ``hf_xet`` installed it switches to a
  multi-commit pipeline that skips the metadata check.)
* :func:`download` is ``snapshot_download`` restricted to the three files, so the files land
  in the standard HF cache and ``HF_HUB_OFFLINE=1`` serves them from there without network.

The endpoint is ``endpoint=`` if given, else ``$HF_ENDPOINT`` read at call time (so a process
that changes it after importing ``huggingface_hub`` still reaches the right server), else
``https://huggingface.co``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from huggingface_hub import CommitOperationAdd, HfApi, constants, snapshot_download
from huggingface_hub.errors import LocalEntryNotFoundError

from zoo.core.checkpoint import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, read_config

__all__ = ["CHECKPOINT_FILES", "download", "push"]

log = logging.getLogger(__name__)

#: The files of a checkpoint directory, in the order they are committed.
CHECKPOINT_FILES: tuple[str, ...] = (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME)


def _endpoint(endpoint: str | None) -> str | None:
    """``endpoint``, else ``$HF_ENDPOINT`` at call time, else ``None`` (the library default)."""
    endpoint = endpoint or os.environ.get("HF_ENDPOINT") or None
    return endpoint.rstrip("/") if endpoint else None


def push(
    checkpoint_dir: str | os.PathLike,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    commit_message: str | None = None,
    endpoint: str | None = None,
    revision: str | None = None,
) -> str:
    """Upload a checkpoint directory to the Hub repository ``repo_id`` (created if missing).

    Args:
        checkpoint_dir: a directory written by ``zoo.save_checkpoint`` / ``recipes/train.py``.
        repo_id: ``"org/name"``.
        token: a Hub token (default: ``$HF_TOKEN`` or the token saved by ``hf auth login``).
        private: create the repository private (ignored if it already exists).
        commit_message: defaults to ``"Upload zoo checkpoint <model name>"``.
        endpoint: Hub URL (default: ``$HF_ENDPOINT`` or huggingface.co).
        revision: branch to commit to (default ``main``; created from ``main`` if missing).

    Returns:
        The URL of the commit (``<endpoint>/<repo_id>/commit/<oid>``).

    Raises:
        FileNotFoundError: if ``checkpoint_dir`` is not a zoo checkpoint (nothing is uploaded).
        ValueError: if the Hub rejects the model card metadata.
    """
    directory = Path(checkpoint_dir)
    config = read_config(directory)  # validates before any network call
    missing = [f for f in CHECKPOINT_FILES if not (directory / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{directory} is not a complete zoo checkpoint: {missing} missing")
    name = config["model"]["name"]
    api = HfApi(endpoint=_endpoint(endpoint), token=token)
    repo_url = api.create_repo(repo_id, exist_ok=True, private=private)
    if revision and revision != constants.DEFAULT_REVISION:
        api.create_branch(repo_id, branch=revision, exist_ok=True)  # from main's head
    log.info("pushing %s to %s", directory, repo_url)
    info = api.create_commit(
        repo_id,
        [
            CommitOperationAdd(path_in_repo=f, path_or_fileobj=directory / f)
            for f in CHECKPOINT_FILES
        ],
        commit_message=commit_message or f"Upload zoo checkpoint {name}",
        revision=revision,
    )
    return info.commit_url


def download(
    repo_id: str,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    token: str | None = None,
    endpoint: str | None = None,
) -> Path:
    """The local snapshot directory of a checkpoint pushed to ``repo_id``, via the HF cache.

    Online, fetches what is missing from the cache; with ``HF_HUB_OFFLINE=1`` (or when the Hub
    cannot be reached) returns the cached snapshot of ``revision`` without any request.

    Args:
        repo_id: ``"org/name"``.
        revision: branch, tag or commit sha (default ``main``).
        cache_dir: HF cache directory (default: ``$HF_HUB_CACHE``).
        token: a Hub token for private repositories.
        endpoint: Hub URL (default: ``$HF_ENDPOINT`` or huggingface.co).

    Raises:
        FileNotFoundError: if the snapshot is not cached and the Hub is offline or unreachable,
            or if the repository does not hold a zoo checkpoint.
    """
    ref = f"hf-hub:{repo_id}" + (f"@{revision}" if revision else "")
    try:
        path = snapshot_download(
            repo_id,
            revision=revision,
            cache_dir=cache_dir,
            token=token,
            endpoint=_endpoint(endpoint),
            allow_patterns=list(CHECKPOINT_FILES),
        )
    except LocalEntryNotFoundError as e:
        cache = cache_dir or constants.HF_HUB_CACHE
        why = "HF_HUB_OFFLINE=1 is set" if constants.is_offline_mode() else "the Hub is unreachable"
        raise FileNotFoundError(
            f"{ref} is not in the local Hugging Face cache ({cache}) and {why}; "
            "download it once online (e.g. zoo.load of the same id without HF_HUB_OFFLINE) "
            f"to use it offline. ({type(e).__name__}: {e})"
        ) from e
    path = Path(path)
    missing = [f for f in (CONFIG_NAME, WEIGHTS_NAME) if not (path / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{ref} does not hold a zoo checkpoint: {missing} missing (push one with "
            "`python recipes/push.py checkpoint=<dir> repo_id=<org>/<name>`)"
        )
    return path
