"""Writes to an external store made on a thread of their own, beside an operator's task thread.

The bundled truck function writes Redis itself (docs/tracking.md, "Redis from the truck
function"): its task thread hands each call's positions to :class:`BackgroundWriter` and goes
on, while one Python thread sends them, its socket waits releasing the interpreter lock. The
task thread waits only at :meth:`BackgroundWriter.drain`, before a checkpoint barrier, so that
a checkpoint never holds a change whose write is still in flight. The thread must never call
into the JVM (no Flink state, metrics or timers): it is not a Flink thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class WriteFailed(RuntimeError):
    """A background write raised: the task fails with it and the job restarts from its latest
    checkpoint, which writes again whatever had not been written."""


class BackgroundWriter(Generic[T]):
    """Sends submitted items, in order, through ``write`` on one background thread. Whatever
    is submitted while a write is in flight goes out together in the next one, so batches grow
    with the load and a quiet stream is written at once. With ``idle_s``, ``write([])`` runs
    after that long without items (periodic upkeep that must not wait for traffic)."""

    def __init__(
        self, write: Callable[[list[T]], object], name: str, idle_s: float | None = None
    ) -> None:
        self._write = write
        self._idle_s = idle_s
        self._pending: list[T] = []
        self._busy = False
        self._closing = False
        self._error: BaseException | None = None
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, items: list[T]) -> None:
        """Queue ``items`` (raises :class:`WriteFailed` if an earlier write failed)."""
        with self._changed:
            self._raise_failure()
            if items:
                self._pending.extend(items)
                self._changed.notify_all()

    def drain(self) -> None:
        """Wait until everything submitted so far is written."""
        with self._changed:
            while (self._pending or self._busy) and self._error is None:
                self._changed.wait()
            self._raise_failure()

    def close(self) -> None:
        """Write what is queued, then stop the thread (the end of a bounded input)."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        self._thread.join()
        with self._changed:
            self._raise_failure()

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise WriteFailed(f"a background write failed: {self._error!r}") from self._error

    def _run(self) -> None:
        _name_os_thread(self._thread.name)
        while True:
            with self._changed:
                idle = False
                while not self._pending and not self._closing and not idle:
                    idle = not self._changed.wait(self._idle_s)
                if not self._pending and not idle:
                    return  # closing, all written
                batch, self._pending = self._pending, []
                self._busy = True
            try:
                self._write(batch)
            except BaseException as exc:  # noqa: BLE001 - handed to the task thread
                with self._changed:
                    self._error, self._busy = exc, False
                    self._changed.notify_all()
                return
            with self._changed:
                self._busy = False
                self._changed.notify_all()


def _name_os_thread(name: str) -> None:
    """Give the thread its name in the OS too (``/proc``, ``top -H``, ``bench.threads``);
    Linux only, best effort. Otherwise it shows its creator's, the Flink task thread's."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
