"""Checkpoints: plain tensors and JSON-able values, written atomically, read with ``weights_only=True``.

A checkpoint is data, never code: ``torch.load(path, weights_only=True)`` refuses any pickle that
would construct objects or call functions. Writes go to a temporary file in the same folder, are
fsynced, then renamed over the target, so a crash leaves either the old or the new file, never half.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the problem."""


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Atomically write ``state`` (plus ``format_version``) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"format_version": FORMAT_VERSION, **state}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
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
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "weights_only" in str(e) or "Unsupported global" in str(e) or "GLOBAL" in str(e):
            raise CheckpointError(
                f"{path}: refused, the file holds pickled code or objects, not plain tensors ({first[:120]})"
            ) from None
        raise CheckpointError(f"{path}: corrupted checkpoint ({first[:120]})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: truncated or corrupted checkpoint ({first[:120]})") from None
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
    if family is not None and state["family"] != family:
        raise CheckpointError(f"{path}: checkpoint of family {state['family']}, not {family}")
    return state
