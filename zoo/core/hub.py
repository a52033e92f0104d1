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

Both calls are bounded in time: ``timeout=`` (default ``$ZOO_HUB_TIMEOUT``, else 30 s) caps every
wait on the Hub (opening the connection, and each silence while sending or receiving; a large
download that keeps moving is never cut), and a request that failed for a network reason
(refused, timed out, reset) is never sent again within the call: the client's own retries,
resumes and backoff loops stop there. So an unreachable Hub (a closed port, or a server that
accepts and never answers) makes :func:`push` and :func:`download` raise
:class:`HubUnreachableError` after about ``timeout`` seconds (plus the client's first 1 s backoff
sleep where it retries, and, once per process, up to 3 s for ``huggingface_hub``'s own
agent-registry lookup when its day-long cache is stale), naming the call, the repository, the
endpoint, the cause and the offline way. For the duration of a call, ``huggingface_hub``'s
shared HTTP client is one built here (with the library's own request hook) and the previous
client factory is put back afterwards; calls are serialised in the process.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from huggingface_hub import CommitOperationAdd, HfApi, constants, snapshot_download
from huggingface_hub.errors import LocalEntryNotFoundError
from huggingface_hub.utils import _http as hf_http
from huggingface_hub.utils import set_client_factory

from zoo.core.checkpoint import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, read_config
from zoo.core.version import __version__

#: sent in the Hub client's user agent on every request (the Hub's per-library statistics)
LIBRARY = {"library_name": "zoo", "library_version": __version__}

try:  # huggingface_hub >= 2 ships its HTTP client as httpx2; 1.x uses httpx (same API)
    import httpx2
except ImportError:  # pragma: no cover - exercised with huggingface_hub 1.x
    import httpx as httpx2

__all__ = [
    "CHECKPOINT_FILES",
    "DEFAULT_TIMEOUT",
    "LIBRARY",
    "TIMEOUT_ENV",
    "HubUnreachableError",
    "download",
    "hub_timeout",
    "push",
]

log = logging.getLogger(__name__)

#: The files of a checkpoint directory, in the order they are committed.
CHECKPOINT_FILES: tuple[str, ...] = (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME)

#: Environment variable holding the default ``timeout`` of :func:`push` and :func:`download`.
TIMEOUT_ENV = "ZOO_HUB_TIMEOUT"
#: Seconds a Hub call may wait on the network when neither ``timeout=`` nor the variable is set.
DEFAULT_TIMEOUT = 30.0

_TIMEOUT_KEYS = ("connect", "read", "write", "pool")
_CALL_LOCK = threading.RLock()  # the HTTP client factory is process-wide


class HubUnreachableError(ConnectionError):
    """The Hub could not be reached: connection refused, timed out or broken."""


class _GaveUp(Exception):
    """A request that already failed on the network in this call, sent again: not sent."""

    def __init__(self, failure: httpx2.TransportError) -> None:
        super().__init__(f"not retried after: {failure}")
        self.failure = failure


class _Call:
    """One push or download: its per-wait timeout and the network failure of each request."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.failures: dict[tuple[str, str], httpx2.TransportError] = {}  # (method, url)


class _BoundedTransport(httpx2.BaseTransport):
    """HTTP transport capping every timeout at the call's, sending no request twice after it
    failed on the network (the client's retries, resumes and backoff loops stop there)."""

    def __init__(self, call: _Call) -> None:
        self._call = call
        self._inner = httpx2.HTTPTransport()

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        call, key = self._call, (request.method, str(request.url))
        if key in call.failures:
            raise _GaveUp(call.failures[key])
        asked = request.extensions.get("timeout") or {}
        request.extensions["timeout"] = {
            k: call.timeout if asked.get(k) is None else min(asked[k], call.timeout)
            for k in _TIMEOUT_KEYS
        }
        try:
            return self._inner.handle_request(request)
        except (httpx2.TimeoutException, httpx2.NetworkError, httpx2.RemoteProtocolError) as e:
            call.failures[key] = e
            raise

    def close(self) -> None:
        self._inner.close()


def hub_timeout(timeout: float | None = None) -> float:
    """``timeout``, else ``$ZOO_HUB_TIMEOUT``, else :data:`DEFAULT_TIMEOUT` (seconds, > 0)."""
    raw: object = timeout
    if raw is None:
        raw = os.environ.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        source = "timeout" if timeout is not None else TIMEOUT_ENV
        raise ValueError(f"{source} must be a number of seconds > 0, got {raw!r}")
    return value


@contextmanager
def _bounded(timeout: float) -> Iterator[_Call]:
    """Route ``huggingface_hub``'s requests through a :class:`_BoundedTransport` meanwhile."""

    def factory() -> httpx2.Client:
        return httpx2.Client(
            transport=_BoundedTransport(call),
            event_hooks={"request": [hf_http.hf_request_event_hook]},  # offline mode, request ids
            follow_redirects=True,
            timeout=timeout,
        )

    call = _Call(timeout)
    with _CALL_LOCK:
        previous: Callable[[], httpx2.Client] = getattr(
            hf_http, "_GLOBAL_CLIENT_FACTORY", hf_http.default_client_factory
        )
        set_client_factory(factory)
        try:
            yield call
        finally:
            set_client_factory(previous)


def _network_cause(error: BaseException | None) -> httpx2.TransportError | None:
    """The network error behind ``error`` (itself or along its ``__cause__`` chain), if any."""
    while error is not None:
        if isinstance(error, _GaveUp):
            return error.failure
        if isinstance(error, httpx2.TransportError):
            return error
        error = error.__cause__
    return None


def _why(error: httpx2.TransportError, timeout: float) -> str:
    """Why a request failed, in words."""
    if isinstance(error, httpx2.ConnectTimeout):
        return f"no connection could be opened within {timeout:g} s (timed out)"
    if isinstance(error, httpx2.TimeoutException):
        return f"the server did not answer within {timeout:g} s (timed out)"
    if isinstance(error, httpx2.ConnectError) and "refused" in str(error).lower():
        return "connection refused (nothing is listening there)"
    return f"{type(error).__name__}: {error}"


def _unreachable(
    what: str, url: str, cause: httpx2.TransportError, timeout: float, offline: str
) -> HubUnreachableError:
    """The error for a call that failed on the network, with the cause and the offline way."""
    return HubUnreachableError(
        f"{what} failed: the Hub at {url} is unreachable: {_why(cause, timeout)}. {offline} "
        "Retry once the network is back; a slow network needs a longer limit "
        f"(timeout=<s> or {TIMEOUT_ENV}=<s>, now {timeout:g} s)."
    )


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
    timeout: float | None = None,
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
        timeout: seconds any wait on the Hub may last (default ``$ZOO_HUB_TIMEOUT`` or 30); a
            request that fails on the network is not retried.

    Returns:
        The URL of the commit (``<endpoint>/<repo_id>/commit/<oid>``).

    Raises:
        FileNotFoundError: if ``checkpoint_dir`` is not a zoo checkpoint (nothing is uploaded).
        ValueError: if the Hub rejects the model card metadata, or ``timeout`` is not > 0.
        HubUnreachableError: if the Hub cannot be reached (the local directory is untouched).
    """
    directory = Path(checkpoint_dir)
    config = read_config(directory)  # validates before any network call
    missing = [f for f in CHECKPOINT_FILES if not (directory / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{directory} is not a complete zoo checkpoint: {missing} missing")
    name = config["model"]["name"]
    endpoint = _endpoint(endpoint)
    url = endpoint or constants.ENDPOINT
    with _bounded(hub_timeout(timeout)) as call:
        try:
            api = HfApi(endpoint=endpoint, token=token, **LIBRARY)
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
        except Exception as e:
            cause = _network_cause(e)
            if cause is None:
                raise
            offline = (
                f"Nothing was uploaded or changed locally: {directory} is still a complete "
                f"checkpoint, usable offline as zoo.load({str(directory)!r})."
            )
            what = f"push of {directory} to {repo_id}"
            raise _unreachable(what, url, cause, call.timeout, offline) from e
    return info.commit_url


def download(
    repo_id: str,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    token: str | None = None,
    endpoint: str | None = None,
    timeout: float | None = None,
) -> Path:
    """The local snapshot directory of a checkpoint pushed to ``repo_id``, via the HF cache.

    Online, fetches what is missing from the cache; with ``HF_HUB_OFFLINE=1`` returns the cached
    snapshot of ``revision`` without any request, and when the Hub cannot be reached returns it
    after about ``timeout`` seconds (with a warning).

    Args:
        repo_id: ``"org/name"``.
        revision: branch, tag or commit sha (default ``main``).
        cache_dir: HF cache directory (default: ``$HF_HUB_CACHE``).
        token: a Hub token for private repositories.
        endpoint: Hub URL (default: ``$HF_ENDPOINT`` or huggingface.co).
        timeout: seconds any wait on the Hub may last (default ``$ZOO_HUB_TIMEOUT`` or 30); a
            request that fails on the network is not retried.

    Raises:
        FileNotFoundError: if ``HF_HUB_OFFLINE=1`` is set and the snapshot is not cached, or if
            the repository does not hold a zoo checkpoint.
        HubUnreachableError: if the Hub cannot be reached and the snapshot is not cached.
        ValueError: if ``timeout`` is not > 0.
    """
    ref = f"hf-hub:{repo_id}" + (f"@{revision}" if revision else "")
    cache = cache_dir or constants.HF_HUB_CACHE
    endpoint = _endpoint(endpoint)
    url = endpoint or constants.ENDPOINT
    with _bounded(hub_timeout(timeout)) as call:
        try:
            path = Path(
                snapshot_download(
                    repo_id,
                    revision=revision,
                    cache_dir=cache_dir,
                    token=token,
                    endpoint=endpoint,
                    allow_patterns=list(CHECKPOINT_FILES),
                    **LIBRARY,
                )
            )
        except Exception as e:
            cause = _network_cause(e)
            if cause is not None:
                offline = (
                    f"To work offline, set HF_HUB_OFFLINE=1 once {ref} is in the local Hugging "
                    f"Face cache ({cache}), or load a local checkpoint directory instead "
                    "(zoo.load('path/to/dir'), or a registered name for checkpoints/<name>)."
                )
                raise _unreachable(f"download of {ref}", url, cause, call.timeout, offline) from e
            if not isinstance(e, LocalEntryNotFoundError):
                raise
            why = (
                "HF_HUB_OFFLINE=1 is set"
                if constants.is_offline_mode()
                else "the Hub did not serve it"
            )
            raise FileNotFoundError(
                f"{ref} is not in the local Hugging Face cache ({cache}) and {why}; "
                "download it once online (e.g. zoo.load of the same id without HF_HUB_OFFLINE) "
                f"to use it offline. ({type(e).__name__}: {e})"
            ) from e
    missed = [e for (_, u), e in call.failures.items() if u.startswith(url + "/")]
    if missed:
        log.warning(
            "%s: the Hub at %s is unreachable (%s); using the cached snapshot %s",
            ref,
            url,
            _why(missed[0], call.timeout),
            path,
        )
    missing = [f for f in (CONFIG_NAME, WEIGHTS_NAME) if not (path / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{ref} does not hold a zoo checkpoint: {missing} missing (push one with "
            "`python recipes/push.py checkpoint=<dir> repo_id=<org>/<name>`)"
        )
    return path
