"""Checkpoints: plain tensors and JSON-able values, written atomically, read with ``weights_only=True``.

A checkpoint is data, never code: ``torch.load(path, weights_only=True)`` refuses any pickle that
would construct objects or call functions. Writes go to a temporary file in the same folder, are
fsynced, then renamed over the target, so a crash leaves either the old or the new file, never half.
Each checkpoint carries a SHA-256 ``checksum`` of its content: torch's zip reader does not verify the
data records, so without it a flipped byte inside a tensor would load silently (measured). Loading
checks the checksum (when present: older format-1 files have none), the format version, the keys,
and that every parameter is finite; the configuration of an older format is migrated explicitly.
Each checkpoint records the versions of metarl, torch, MuJoCo, Gymnasium, numpy and Python and the platform
that wrote it; loading one written by others prints one warning line (once per process), since bit-exact
results hold per platform and versions.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import platform
import re
import sys
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import torch

#: 2: the configuration holds its two inner loops (``inner``, ``adapt``) as objects (metarl.config.migrate).
#: The optional ``versions`` key (added within format 2: older files lack it, and an older metarl of format 2
#: reads newer files, ignoring it) records the versions that wrote the file.
#: 3: ``video_every``, and the inner loops' ``step_decay`` and ``holdout`` (format 2's files load with all off).
FORMAT_VERSION = 3


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the problem."""


def _digest(value: Any, h: Any) -> None:
    """Feed ``value`` (nested dicts/lists of tensors and JSON-able scalars) into the hash ``h``."""
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    elif isinstance(value, dict):
        h.update(b"{")
        for k in sorted(value, key=str):
            h.update(json.dumps(str(k)).encode())
            _digest(value[k], h)
        h.update(b"}")
    elif isinstance(value, (list, tuple)):
        h.update(b"[")
        for v in value:
            _digest(v, h)
        h.update(b"]")
    else:
        h.update(json.dumps(value, sort_keys=True).encode())


def checksum(state: dict[str, Any]) -> str:
    """SHA-256 of a checkpoint's content (every key but ``checksum`` itself)."""
    h = hashlib.sha256()
    _digest({k: v for k, v in state.items() if k != "checksum"}, h)
    return h.hexdigest()


def write_atomic(path: str | os.PathLike[str], write: Callable[[BinaryIO], Any]) -> Path:
    """Replace ``path`` atomically with what ``write(file)`` writes into a binary file object.

    The one atomic writer of metarl (checkpoints, config.json, results.json, plots, SB3 zips, adapted
    policies): a temporary file in the same folder, fsync, rename over ``path``, fsync of the folder. A
    process killed at any moment leaves the old file or the new one, never a mix, plus at most a
    temporary ``.NAME.XXXXXXXX.tmp`` (:func:`remove_stale_temporaries`). Returns ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual file mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def versions() -> dict[str, str]:
    """The versions and platform this process computes with; every checkpoint records those that made it.

    Results are bit-identical for the same versions on the same platform (tested); other versions of these
    packages may round differently, so a resumed run or an adaptation may then differ in the last bits.
    """
    import gymnasium
    import mujoco
    import numpy

    from . import __version__

    return {
        "metarl": __version__,
        "torch": str(torch.__version__),
        "mujoco": str(mujoco.__version__),
        "gymnasium": str(gymnasium.__version__),
        "numpy": str(numpy.__version__),
        "python": platform.python_version(),
        "platform": f"{platform.system()}-{platform.machine()}",
    }


#: Version differences already reported by :func:`load_checkpoint` in this process (each is reported once).
_REPORTED: set[tuple[tuple[str, str], ...]] = set()


def _check_versions(path: Path, saved: Any) -> None:
    """Print one warning line (once per process and difference) if ``saved`` differs from :func:`versions`."""
    if not isinstance(saved, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in saved.items()):
        raise CheckpointError(f"{path}: not a metarl checkpoint ('versions' is not a mapping of names to versions)")
    now = versions()
    differ = tuple(sorted((k, v) for k, v in saved.items() if k in now and now[k] != v))
    if not differ or differ in _REPORTED:
        return
    _REPORTED.add(differ)
    then = ", ".join(f"{k} {v}" for k, v in differ)
    here = ", ".join(f"{k} {now[k]}" for k, _ in differ)
    print(
        f"metarl: warning: {path} was saved with {then} (this process: {here}); it loads, but results reproduce "
        "bit for bit only with the same versions on the same platform",
        file=sys.stderr,
    )


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Atomically write ``state`` (plus ``format_version``, ``versions`` and ``checksum``) to ``path``.

    ``versions`` (:func:`versions`) records what made the checkpoint; a ``versions`` key in ``state`` is kept.
    """
    state = {"format_version": FORMAT_VERSION, "versions": versions(), **state}
    state["checksum"] = checksum(state)
    write_atomic(path, lambda f: torch.save(state, f))


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Atomically replace the text file ``path`` (a crash leaves the old or the new content)."""
    write_atomic(path, lambda f: f.write(text.encode()))


#: Temporary files that a process killed in the middle of a write leaves behind.
_TEMPORARY = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")


def remove_stale_temporaries(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files of interrupted atomic writes in ``folder``; returns what was removed."""
    removed = []
    folder = Path(folder)
    if folder.is_dir():
        for p in folder.iterdir():
            if p.is_file() and _TEMPORARY.match(p.name):
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed


def _first_line(e: BaseException, limit: int = 120) -> str:
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:limit]


def load_checkpoint(path: str | os.PathLike[str], family: str | None = None) -> dict[str, Any]:
    """Read and check a checkpoint.

    Args:
        path: the ``.pt`` file.
        family: if given, the family the checkpoint must belong to.

    Raises:
        CheckpointError: missing, truncated, corrupted, unsafe (would run code), newer format, or of
            another family; the message is one line naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before refusing: one line only
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        text = str(e)
        if "weights_only" in text or "WeightsUnpickler" in text or "Unsupported global" in text:
            detail = re.search(r"WeightsUnpickler error:\s*(.+)", text)
            why = detail.group(1).strip()[:100] if detail else _first_line(e, 100)
            raise CheckpointError(
                f"{path}: refused to load, the file holds pickled code or objects, not plain tensors ({why}); "
                "nothing in it was run"
            ) from None
        raise CheckpointError(f"{path}: corrupted checkpoint ({_first_line(e)})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: truncated or corrupted checkpoint ({_first_line(e)})") from None
    if not isinstance(state, dict) or "format_version" not in state:
        raise CheckpointError(f"{path}: not a metarl checkpoint (no format_version)")
    version = state["format_version"]
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {version} is newer than this metarl reads ({FORMAT_VERSION}); upgrade metarl"
        )
    for key in ("family", "theta", "config"):
        if key not in state:
            raise CheckpointError(f"{path}: not a metarl checkpoint (missing {key!r})")
    if "checksum" in state and state["checksum"] != checksum(state):
        raise CheckpointError(f"{path}: corrupted checkpoint (checksum mismatch: its bytes changed after it was saved)")
    if "versions" in state:  # optional: checkpoints written before it was recorded have none
        _check_versions(path, state["versions"])
    theta = state["theta"]
    if not isinstance(theta, dict) or not theta or not all(isinstance(v, torch.Tensor) for v in theta.values()):
        raise CheckpointError(f"{path}: not a metarl checkpoint ('theta' is not a set of named tensors)")
    for name, value in theta.items():
        if not torch.isfinite(value).all():
            raise CheckpointError(f"{path}: parameter {name} holds NaN or inf; use an earlier checkpoint")
    if not isinstance(state["config"], dict):
        raise CheckpointError(f"{path}: not a metarl checkpoint ('config' is not a mapping)")
    if version < FORMAT_VERSION:  # explicit, per format: never today's defaults for what an old file lacks
        from .config import ConfigError, migrate

        try:
            state["config"] = migrate(state["config"], version)
        except ConfigError as e:
            raise CheckpointError(f"{path}: {e}") from None
        state["format_version"] = FORMAT_VERSION
    if family is not None and state["family"] != family:
        raise CheckpointError(f"{path}: checkpoint of family {state['family']}, not {family}")
    return state
