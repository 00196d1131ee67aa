"""One writer per run folder: an OS file lock held for the whole life of a training, a resume or an evaluation.

:class:`FolderLock` takes ``fcntl.flock(LOCK_EX | LOCK_NB)`` on ``FOLDER/.metarl.lock`` and writes the holder's
process id into that file. The kernel releases the lock when the holder's last descriptor closes, which
includes a process killed by SIGKILL or a power-cut reboot: a lock is never stale, so ``--resume`` after a crash
needs no clean-up. The lock file is never deleted (deleting it while held would let a second process lock a
new file of the same name); the process id in it is only read to name the holder in the error message.

The descriptor is close-on-exec (Python's default), so worker processes and Ray's daemons do not inherit it:
the trainer alone holds the lock. Readers (TensorBoard, ``MetaPolicy.load``, ``metarl.adapt --checkpoint``)
take no lock; they always see complete files because every write is an atomic rename (metarl/checkpoint.py).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

#: The lock file inside a locked folder.
LOCK_NAME = ".metarl.lock"


class FolderInUse(RuntimeError):
    """Another process holds the folder's lock; the message names the folder and the holder's process id."""


class FolderLock:
    """An exclusive, non-blocking lock on ``folder`` (created if missing), as a context manager.

    Args:
        folder: the run or output folder.
        flag: the flag that chose the folder (``--run-dir``, ``--out``), for the message's "choose another"; empty
            where another folder is no answer (``--resume``).
    """

    def __init__(self, folder: str | os.PathLike[str], flag: str = "") -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.flag = flag
        self._fd: int | None = None

    def holder(self) -> int | None:
        """The process id written by the last holder (None if unreadable; it may have exited since)."""
        try:
            return int(self.path.read_text().strip())
        except (OSError, ValueError):
            return None

    def acquire(self) -> FolderLock:
        """Take the lock or raise :class:`FolderInUse`; writes nothing when the folder is in use."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            pid = self.holder()
            who = f"process {pid}" if pid is not None else "another process"
            raise FolderInUse(
                f"{self.folder} is in use by {who} (a metarl training, resume or evaluation holds {self.path}); "
                f"wait for it to finish{f' or stop it (kill -INT {pid})' if pid is not None else ''}"
                + (f", or choose another {self.flag}" if self.flag else "")
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Release the lock (closing the descriptor releases it; the file stays)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire() if self._fd is None else self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.release()
