"""One object per process, made at first use in each process: a forked child (a worker's pool
process) makes its own, since the parent's threads are not there after a fork."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerProcess(Generic[T]):
    """``make()``'s object for this process: ``get()`` makes it at the first call in each process
    (once, however many threads ask at once) and returns that one after."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._made: tuple[int, T] | None = None
        self._lock = threading.Lock()
        # A child forked while a thread of the parent held the lock would wait on it for ever.
        os.register_at_fork(after_in_child=self._after_fork)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._made = None

    def get(self) -> T:
        pid = os.getpid()
        made = self._made
        if made is not None and made[0] == pid:
            return made[1]
        with self._lock:
            if self._made is None or self._made[0] != pid:
                self._made = (pid, self._make())
            return self._made[1]
