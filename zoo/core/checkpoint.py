"""The checkpoint directory format, the same on disk, in ``checkpoints/`` and on the Hub.

A checkpoint directory holds exactly::

    config.json         {"model": {"name": ..., **hparams}, "data": {"name": ..., **cfg},
                         "metrics": {...}, "command": ..., "zoo_version": ...,
                         "export_id": <a fresh uuid4 hex per save>}
    model.safetensors   the state dict (weights and persistent buffers)
    README.md           the model card: data, command, measured metrics

Writing (:func:`save`) never destroys what is not ours, and replaces a checkpoint atomically:

* the target must be absent, an empty directory or a zoo checkpoint directory (its entries are
  checkpoint files only and its ``config.json`` is a zoo config); anything else is refused
  before a byte is written (:func:`check_export_target`; ``recipes/train.py`` calls it before
  training starts). Non-finite weights are refused too.
* the new directory is written and fsynced in a sibling ``.<name>.tmp-<hex>`` with normal
  permissions (0644 files, 0755 directories under the default umask), then swapped with the
  old one by ``renameat2(RENAME_EXCHANGE)`` (Linux): at every instant the path holds a complete
  checkpoint, old or new. Where the kernel, libc or filesystem cannot exchange (or with
  ``ZOO_NO_RENAME_EXCHANGE=1`` in the environment) the old directory is first renamed aside to
  ``.<name>.old-<hex>``; a kill between the two renames leaves the path missing for a moment,
  and the next :func:`load` or :func:`save` of that path restores the old checkpoint.
* saves to one path are serialised by a file lock (``.<name>.lock``, removed after each save);
  each save first removes the leftovers of killed ones (``.<name>.tmp-*``/``.<name>.old-*``
  directories that hold checkpoint files only). ``config.json`` records a unique
  ``export_id`` (also set on the module as ``zoo_export_id``): :func:`export_id` tells whether
  a later save to the same path superseded ours.

Reading is strict and never unpickles (weights go through ``safetensors`` only). A checkpoint
whose files are symlinks (other than a Hugging Face cache snapshot's links into its own
``blobs/``) or not regular files, whose ``config.json`` is not valid JSON, whose weights file is
truncated, holds NaN/inf, a tensor of another dtype than the model's (``zoo.load`` never
casts: convert the model and save it again), or does not match the architecture the config
describes, raises ``ValueError`` naming the file. The checkpoint directory itself may be a
symlink.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import json
import logging
import math
import os
import re
import secrets
import shutil
import stat
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes

from zoo.core.card import headline_metrics, model_card
from zoo.core.module import ZooModule
from zoo.core.registry import check_shared, create, get_spec
from zoo.core.version import __version__

__all__ = [
    "CARD_NAME",
    "CONFIG_NAME",
    "NO_EXCHANGE_ENV",
    "WEIGHTS_NAME",
    "check_export_target",
    "checkpoints_root",
    "export_id",
    "headline_metrics",
    "load",
    "load_checkpoint",
    "read_config",
    "resolve",
    "save",
    "save_checkpoint",
]

log = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
HUB_PREFIX = "hf-hub:"
_FILES = frozenset({CONFIG_NAME, WEIGHTS_NAME, CARD_NAME})
#: Set (to anything non-empty) to replace checkpoints without ``renameat2(RENAME_EXCHANGE)``.
NO_EXCHANGE_ENV = "ZOO_NO_RENAME_EXCHANGE"
# Suffixes after ".<name>." of the directories a save leaves when killed: ours (tmp-/old-
# and 8 hex digits) and those of zoo versions that used tempfile.mkdtemp and ".old-<pid>".
_LEFTOVER = re.compile(r"(?:tmp|old)-[0-9a-f]{8}|old-[0-9]+|[a-z0-9_]{8}")


def checkpoints_root() -> Path:
    """Shipped pretrained checkpoints: ``$ZOO_CHECKPOINTS`` or ``<repo>/checkpoints``."""
    env = os.environ.get("ZOO_CHECKPOINTS")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "checkpoints"


def _jsonable(metrics: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in metrics.items():
        if isinstance(v, torch.Tensor):
            v = v.item() if v.numel() == 1 else v.tolist()
        if isinstance(v, float) and not math.isfinite(v):
            v = str(v)
        out[str(k)] = v
    return out


_REF = "a model name (see zoo.list_models()), a checkpoint directory or an 'hf-hub:<org>/<name>' id"


def _path_arg(value: Any, what: str, takes: str = "a checkpoint directory") -> str:
    """``value`` as a non-empty path string; a clear error for ``None``, numbers, bytes."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise TypeError(
            f"{what} takes a str or os.PathLike ({takes}), got {type(value).__name__}: {value!r}"
        )
    if not value.strip():
        raise ValueError(f"{what} got an empty string; pass {takes}")
    return value


# ----------------------------------------------------------------------------- file system


def _fsync_dir(path: Path) -> None:
    """Make renames and creations inside ``path`` durable (a no-op where dirs cannot be opened)."""
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_new(path: Path, data: bytes) -> None:
    """Create ``path`` (mode 0666 less the umask) with ``data``, flushed to disk."""
    with open(path, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


@functools.cache
def _renameat2() -> Callable[..., int] | None:
    """libc's ``renameat2`` (glibc ≥ 2.28), or ``None``."""
    if sys.platform != "linux":
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap the two existing paths ``a`` and ``b`` atomically; ``False`` where unsupported."""
    fn = None if os.environ.get(NO_EXCHANGE_ENV) else _renameat2()
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS):  # the kernel or the filesystem cannot exchange
        return False
    raise OSError(
        err, f"cannot swap in the new checkpoint: {os.strerror(err)}", str(a), None, str(b)
    )


def _new_sibling(directory: Path, kind: str) -> Path:
    """A fresh ``.<name>.<kind>-<hex>`` name next to ``directory`` (not created)."""
    while True:
        path = directory.with_name(f".{directory.name}.{kind}-{secrets.token_hex(4)}")
        if not os.path.lexists(path):
            return path


def _only_checkpoint_files(path: Path) -> bool:
    """Whether ``path`` is a real directory holding nothing but checkpoint files (or nothing)."""
    try:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            return False
        return all(e.name in _FILES and e.is_file(follow_symlinks=False) for e in os.scandir(path))
    except OSError:
        return False


def _leftovers(directory: Path) -> list[Path]:
    """The directories that killed saves to ``directory`` left next to it."""
    prefix = f".{directory.name}."
    try:
        names = os.listdir(directory.parent)
    except OSError:  # no parent, or not a directory: nothing was left there
        return []
    return [
        directory.parent / n
        for n in names
        if n.startswith(prefix)
        and _LEFTOVER.fullmatch(n[len(prefix) :])
        and _only_checkpoint_files(directory.parent / n)
    ]


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Hold the lock that serialises writers of ``directory`` (its parent must exist).

    The lock file is unlinked while still held: a waiter that then gets the lock on the
    unlinked file sees it gone and retries on a fresh one (``filelock`` checks the link count).
    """
    path = directory.with_name(f".{directory.name}.lock")
    with FileLock(path):
        try:
            yield
        finally:
            with suppress(OSError):
                path.unlink()


def _recover_locked(directory: Path) -> bool:
    """Move back the checkpoint that a save killed mid-swap left aside; ``True`` if it did."""
    if os.path.lexists(directory):
        return False
    olds = [
        p
        for p in _leftovers(directory)
        if p.name.startswith(f".{directory.name}.old-")
        and (p / CONFIG_NAME).is_file()
        and _not_a_checkpoint(p) is None
    ]
    if not olds:
        return False
    old = max(olds, key=lambda p: (p / CONFIG_NAME).stat().st_mtime_ns)
    os.rename(old, directory)
    _fsync_dir(directory.parent)
    log.warning("restored %s from %s, left by an interrupted save", directory, old.name)
    return True


def _recover(directory: Path) -> bool:
    """:func:`_recover_locked` under the lock, when ``directory`` is missing (cheap otherwise)."""
    if os.path.lexists(directory) or not any(
        p.name.startswith(f".{directory.name}.old-") for p in _leftovers(directory)
    ):
        return False
    with _locked(directory):
        return _recover_locked(directory)


# ----------------------------------------------------------------------------- writing


def _not_a_checkpoint(path: Path) -> str | None:
    """Why the existing ``path`` is not a zoo checkpoint directory, or ``None`` if it is one.

    An empty directory counts as one: it holds nothing to lose.
    """
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return f"it is a symlink (to {os.readlink(path)})"
    if not stat.S_ISDIR(st.st_mode):
        return "it is a file" if stat.S_ISREG(st.st_mode) else "it is not a directory"
    entries = sorted(os.listdir(path))
    if not entries:
        return None
    extra = [e for e in entries if e not in _FILES]
    if extra:
        more = f" and {len(extra) - 5} more" if len(extra) > 5 else ""
        return f"it holds {', '.join(extra[:5])}{more}, which a checkpoint does not have"
    for e in entries:
        if not stat.S_ISREG(os.lstat(path / e).st_mode):
            return f"its {e} is not a regular file"
    missing = sorted({CONFIG_NAME, WEIGHTS_NAME} - set(entries))
    if missing:
        return f"it has no {' or '.join(missing)}"
    try:
        config = json.loads((path / CONFIG_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        config = None
    model = config.get("model") if isinstance(config, dict) else None
    if not (isinstance(model, dict) and "name" in model and "zoo_version" in config):
        return f"its {CONFIG_NAME} is not a zoo config (no model.name and zoo_version)"
    return None


def check_export_target(path: str | os.PathLike) -> Path:
    """Refuse an export target that holds anything but a zoo checkpoint, before any work.

    Args:
        path: where :func:`save` is to write (``~`` is expanded).

    Returns:
        The path, fine to export to: absent, an empty directory or a zoo checkpoint directory.

    Raises:
        FileExistsError: the path is a file, a symlink, or a directory with other contents.
        NotADirectoryError: a parent of the path is a file.
    """
    path = Path(_path_arg(path, "check_export_target", "a directory")).expanduser()
    for parent in path.parents:
        if os.path.lexists(parent):
            if not parent.is_dir():
                raise NotADirectoryError(
                    f"cannot export to {path}: {parent} is a file, not a directory; "
                    "choose another export_dir"
                )
            break
    if not os.path.lexists(path):
        return path
    why = _not_a_checkpoint(path)
    with suppress(OSError):
        if why is None and Path.cwd().resolve().is_relative_to(path.resolve()):
            why = "it is (or holds) the current working directory, which a swap would delete"
    if why is not None:
        raise FileExistsError(
            f"export_dir {path} already exists and is not a zoo checkpoint directory: {why}. "
            f"Nothing was written. Choose another export_dir, or move or remove {path} "
            "yourself if you no longer need what is there."
        )
    return path


def save(
    module: ZooModule,
    directory: str | os.PathLike,
    *,
    metrics: Mapping[str, Any] | None = None,
    command: str | None = None,
    data_config: Mapping[str, Any] | None = None,
    evaluation: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``module`` as a checkpoint directory, replacing an older one atomically.

    Args:
        module: a model built by ``zoo.create``/``zoo.load`` (it knows its registry name).
        directory: target directory (``~`` is expanded): absent, empty, or a zoo checkpoint,
            which is replaced as a whole; anything else is refused.
        metrics: measured metrics for ``config.json`` and the model card.
        command: the command that produced the weights (model card).
        data_config: the data config trained on (defaults to ``module.zoo_data_config``).
        evaluation: how ``metrics`` were measured (``{"command": ..., "seeds": [...]}``),
            stored under ``config.json``'s ``evaluation`` and shown on the card.

    Returns:
        The checkpoint directory. Its ``config.json`` holds a fresh ``export_id``, also set as
        ``module.zoo_export_id``; ``export_id(directory) != module.zoo_export_id`` later means
        another save replaced this one.

    Raises:
        FileExistsError, NotADirectoryError: see :func:`check_export_target`.
        ValueError: the module has no registry name or non-finite weights.
        TypeError: a metric or config value is not JSON-able.
        Whatever the error, an existing checkpoint at ``directory`` is left as it was.
    """
    if not isinstance(module, ZooModule):
        raise TypeError(f"zoo.save takes a zoo model (zoo.create/zoo.load), got {type(module)}")
    if not module.zoo_name:
        raise ValueError("module has no zoo_name: build it with zoo.create(name) or zoo.load")
    directory = Path(_path_arg(directory, "zoo.save", "a directory")).expanduser()
    check_export_target(directory)
    config = module.zoo_config
    if data_config is not None:
        config["data"] = dict(data_config)
    config["metrics"] = _jsonable(metrics if metrics is not None else module.zoo_metrics)
    config["command"] = command
    if evaluation:
        config["evaluation"] = dict(evaluation)
    config["zoo_version"] = __version__
    config["export_id"] = uuid.uuid4().hex
    config_text = json.dumps(config, indent=2, sort_keys=False) + "\n"  # TypeError if not JSON
    state = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    for k, t in state.items():
        if (t.is_floating_point() or t.is_complex()) and not bool(torch.isfinite(t).all()):
            raise ValueError(
                f"refusing to save {module.zoo_name}: tensor {k!r} holds NaN or inf (did "
                f"training diverge?); nothing was written to {directory}"
            )
    weights = safetensors_bytes(state, metadata={"format": "pt", "zoo_model": module.zoo_name})
    extra = (
        module.model_card_extra(config["metrics"]) if hasattr(module, "model_card_extra") else ""
    )
    card = model_card(config, extra)

    target = Path(os.path.abspath(directory))  # a real last component, also for "."
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target):
        _recover_locked(target)
        for leftover in _leftovers(target):
            shutil.rmtree(leftover, ignore_errors=True)
        check_export_target(target)  # again: someone may have written there meanwhile
        tmp = _new_sibling(target, "tmp")
        os.mkdir(tmp)  # 0777 less the umask (tempfile.mkdtemp would make it 0700)
        try:
            _write_new(tmp / WEIGHTS_NAME, weights)
            _write_new(tmp / CONFIG_NAME, config_text.encode())
            _write_new(tmp / CARD_NAME, card.encode())
            _fsync_dir(tmp)
            _swap_in(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # the old checkpoint after an exchange
    module.zoo_export_id = config["export_id"]
    return directory


def _swap_in(tmp: Path, directory: Path) -> None:
    """Put the complete directory ``tmp`` at ``directory``; the old one, if any, ends at ``tmp``
    (exchange) or is removed."""
    if not os.path.lexists(directory):
        os.rename(tmp, directory)
    elif not _exchange(tmp, directory):
        old = _new_sibling(directory, "old")
        os.rename(directory, old)
        try:
            os.rename(tmp, directory)
        except BaseException:
            os.rename(old, directory)
            raise
        _fsync_dir(directory.parent)
        shutil.rmtree(old)
        return
    _fsync_dir(directory.parent)


#: ``save`` under its historical name.
save_checkpoint = save


def export_id(directory: str | os.PathLike) -> str | None:
    """The ``export_id`` in ``directory``'s ``config.json``; ``None`` if there is none."""
    try:
        config = json.loads((Path(directory) / CONFIG_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    value = config.get("export_id") if isinstance(config, dict) else None
    return value if isinstance(value, str) else None


# ----------------------------------------------------------------------------- reading

_REEXPORT = "re-export it with zoo.save, or download it again"


def _hub_blob(directory: Path, link: Path) -> bool:
    """Whether ``link`` is a Hugging Face cache snapshot's link into its own ``blobs/``."""
    real = directory.resolve()
    if real.parent.name != "snapshots":
        return False
    return link.resolve().is_relative_to(real.parent.parent / "blobs")


def _checked_file(directory: Path, name: str) -> Path:
    """``directory / name``, refused unless it is a regular file (not a symlink elsewhere)."""
    path = directory / name
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{directory} is not a zoo checkpoint: {name} is missing") from None
    if stat.S_ISLNK(st.st_mode):
        if not _hub_blob(directory, path):
            raise ValueError(
                f"{path} is a symlink (to {os.readlink(path)}); a zoo checkpoint holds plain "
                "files, so it is not followed. Replace it with a copy of the file if you trust it."
            )
        st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{path} is not a regular file; {_REEXPORT}")
    return path


def read_config(directory: str | os.PathLike) -> dict[str, Any]:
    """``config.json`` of a checkpoint directory, with a clear error if it is not one."""
    directory = Path(_path_arg(directory, "read_config"))
    if not directory.is_dir():
        if os.path.lexists(directory):
            raise NotADirectoryError(f"{directory} is a file, not a checkpoint directory")
        raise FileNotFoundError(f"no such checkpoint directory: {directory}")
    path = _checked_file(directory, CONFIG_NAME)
    _checked_file(directory, WEIGHTS_NAME)
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text ({e}); {_REEXPORT}") from None
    except json.JSONDecodeError as e:
        raise ValueError(
            f"{path}: invalid JSON at line {e.lineno}, column {e.colno} ({e.msg}); {_REEXPORT}"
        ) from None
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise ValueError(f"{path} has no model.name: not a zoo config; {_REEXPORT}")
    if not isinstance(config["model"].get("name"), str):
        raise ValueError(f"{path} has no model.name: not a zoo config; {_REEXPORT}")
    for key in ("data", "metrics"):
        if not isinstance(config.get(key) or {}, dict):
            raise ValueError(f"{path}: {key!r} is not an object; {_REEXPORT}")
    return config


def _read_weights(path: Path, device: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and metadata of a safetensors file, with the path in any error."""
    try:
        with safe_open(path, framework="pt", device=device) as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})  # noqa: SIM118
    except (SafetensorError, OSError) as e:
        raise ValueError(
            f"{path} is not a readable safetensors file, it is truncated or corrupt ({e}); "
            f"{_REEXPORT}"
        ) from None


def _dtype(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def load_checkpoint(directory: str | os.PathLike, map_location: str = "cpu") -> ZooModule:
    """Rebuild the model of a checkpoint directory and load its weights strictly.

    Raises:
        FileNotFoundError: the directory or one of its files is missing.
        ValueError: a file is a symlink or corrupt, or the weights do not match the architecture
            that the config describes (missing/unexpected keys, shapes, dtypes), or hold NaN/inf.
    """
    directory = Path(_path_arg(directory, "load_checkpoint")).expanduser()
    _recover(directory)
    config = read_config(directory)
    hparams = dict(config["model"])
    name = hparams.pop("name")
    try:
        module = create(name, **hparams)
    except ValueError as e:
        raise ValueError(f"{directory / CONFIG_NAME}: {e}") from None
    path = directory / WEIGHTS_NAME
    state, metadata = _read_weights(path, map_location)
    if metadata.get("zoo_model", name) != name:
        raise ValueError(
            f"{path} holds weights of {metadata['zoo_model']!r} but {CONFIG_NAME} describes "
            f"{name!r}; {_REEXPORT}"
        )
    expected = module.state_dict()
    for k, t in state.items():
        want = expected.get(k)
        if want is not None and t.dtype != want.dtype:
            raise ValueError(
                f"{path}: tensor {k!r} is {_dtype(t.dtype)} but model {name!r} expects "
                f"{_dtype(want.dtype)}; zoo.load does not cast. Convert the model to "
                f"{_dtype(want.dtype)} and save it again with zoo.save."
            )
        if (t.is_floating_point() or t.is_complex()) and not bool(torch.isfinite(t).all()):
            raise ValueError(
                f"{path}: tensor {k!r} holds NaN or inf, the weights are unusable; "
                "re-train, or re-export from finite weights"
            )
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(f"weights in {directory} do not fit model {name!r} {hparams}: {e}") from e
    module.zoo_data_config = dict(config.get("data") or module.zoo_data_config or {})
    try:
        check_shared(name, module.hparams, module.zoo_data_config)
    except ValueError as e:
        raise ValueError(f"{directory / CONFIG_NAME}: {e}") from None
    module.zoo_metrics = dict(config.get("metrics") or {})
    module.zoo_export_id = config.get("export_id")
    module.eval()
    return module


def _looks_like_path(ref: str) -> bool:
    """``./x``, ``~/x``, ``a/b``, ``x/``: meant as a directory, never as a model name."""
    seps = {"/", os.sep} | ({os.altsep} if os.altsep else set())
    return ref.startswith((".", "~")) or any(s in ref for s in seps)


def resolve(ref: str | os.PathLike) -> Path:
    """Turn a checkpoint reference into a local directory.

    ``ref`` is an ``hf-hub:org/name[@revision]`` id (downloaded through the HF cache, which
    works offline with ``HF_HUB_OFFLINE=1`` once cached), an existing directory, or a
    registered model name (its shipped pretrained checkpoint). A ``ref`` that looks like a path
    (``os.PathLike``, or holding a ``/``, or starting with ``.`` or ``~``) is never taken for a
    model name.
    """
    is_pathlike = isinstance(ref, os.PathLike)
    ref = _path_arg(ref, "zoo.load", _REF)
    if ref.startswith(HUB_PREFIX):
        from zoo.core.hub import download

        repo_id, _, revision = ref[len(HUB_PREFIX) :].partition("@")
        return download(repo_id, revision=revision or None)
    path = Path(ref).expanduser()
    if path.is_dir() or _recover(path):
        return path
    if os.path.lexists(path):
        raise NotADirectoryError(
            f"{path} is a file, not a checkpoint directory; pass the directory that holds "
            f"{CONFIG_NAME} and {WEIGHTS_NAME}"
        )
    if is_pathlike or _looks_like_path(ref):
        where = "" if str(path) == ref else f" ({path.absolute()})"
        raise FileNotFoundError(f"no such checkpoint directory: {ref}{where}")
    spec = get_spec(ref)  # unknown names raise, listing the valid ones
    shipped = checkpoints_root() / spec.name
    _recover(shipped)
    if not (shipped / WEIGHTS_NAME).is_file():
        raise FileNotFoundError(
            f"no pretrained checkpoint for {ref!r} at {shipped}; train one with "
            f"`python recipes/train.py model={ref}`"
        )
    return shipped


def load(ref: str | os.PathLike, map_location: str = "cpu") -> ZooModule:
    """A pretrained model from a registered name, a checkpoint directory or an ``hf-hub:`` id."""
    return load_checkpoint(resolve(ref), map_location=map_location)
