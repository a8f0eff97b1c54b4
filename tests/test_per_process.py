"""``core.per_process.PerProcess``: one object per process, made again in a forked child."""

from __future__ import annotations

import os
import threading
import time

from core.per_process import PerProcess


def test_one_object_per_process_however_many_threads_ask_and_another_in_a_forked_child():
    made: list[object] = []
    together = threading.Barrier(8)

    def make() -> object:
        time.sleep(0.05)  # the other threads ask meanwhile
        made.append(object())
        return made[-1]

    once = PerProcess(make)
    got: list[object] = []

    def ask() -> None:
        together.wait()
        got.append(once.get())

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == 1
    assert all(item is made[0] for item in got)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child: a new object, not the parent's
        try:
            os.write(write, b"new" if once.get() is not made[0] and len(made) == 2 else b"same")
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    assert os.read(read, 10) == b"new"
    os.close(read)
    assert once.get() is made[0]  # the parent's is unchanged
