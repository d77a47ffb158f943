"""One dispatcher per state directory: ``<state-dir>/dispatcher.lock``, held with an exclusive
``flock`` for the life of ``run``. Two dispatchers on one state would split open alerts,
inhibition and repeat suppression between two engines that each believe they have all of them;
the second one is refused instead. The kernel drops the lock when the process dies (even on
SIGKILL), so a stale file never blocks a restart. The CLI commands that only read or edit the
database (silences, query, replay) do not take it."""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path

from alerting import AlertingError

LOCK_NAME = "dispatcher.lock"


class InstanceLock:
    def __init__(self, state_dir: str | Path) -> None:
        self.path = Path(state_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> InstanceLock:
        """Take the lock or raise :class:`AlertingError` naming the holder."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise AlertingError(
                f"another dispatcher is running on state directory {self.path.parent} "
                f"({holder}); run one dispatcher per --state-dir: stop the other one, or give "
                "this one its own --state-dir and --group-id"
            ) from None
        os.ftruncate(fd, 0)
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {started}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None
