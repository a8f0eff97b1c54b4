"""A one-line progress bar for the long management commands (import, cleanup, sync).

Drawn on the command's stderr, and only when that is a terminal: piped to a file or run by cron,
a command writes nothing but its summary. stderr rather than stdout so that a summary read by a
script (stdout) never carries the bar's carriage returns; progress on stderr is what git and pip
do too. No dependency: tqdm or rich would be one more package for forty characters.
"""

from __future__ import annotations

import time
from types import TracebackType

from django.core.management.base import OutputWrapper


def _unstyled(text: str) -> str:
    return text  # not the red a command's stderr has for errors


class ProgressBar:
    """``[#####.....] 1200/5000 label``, redrawn in place at most every ``REDRAW_SECONDS``.

    Use as a context manager: leaving it draws the final state and ends the line. ``total`` may
    be an upper bound (runs kept by a cleanup are never counted): the bar is filled at the end.
    """

    WIDTH = 40
    REDRAW_SECONDS = 0.1

    def __init__(self, stream: OutputWrapper, total: int, *, label: str = "") -> None:
        self.stream = stream
        self.total = max(total, 0)
        self.label = label
        self.count = 0
        self.shown = stream.isatty() and self.total > 0
        self._drawn_at = 0.0

    def advance(self, step: int = 1) -> None:
        self.count = min(self.count + step, self.total)
        now = time.monotonic()
        if self.shown and (now - self._drawn_at >= self.REDRAW_SECONDS or self.count == self.total):
            self._draw()
            self._drawn_at = now

    def _draw(self) -> None:
        filled = self.WIDTH * self.count // self.total if self.total else self.WIDTH
        label = f" {self.label}" if self.label else ""
        bar = f"\r[{'#' * filled}{'.' * (self.WIDTH - filled)}] {self.count}/{self.total}{label}"
        self.stream.write(bar, style_func=_unstyled, ending="")
        self.stream.flush()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self.shown:
            return
        if exc_type is None:
            self.count = self.total
            self._draw()
        self.stream.write("", style_func=_unstyled)  # ends the bar's line, so what follows starts on a line of its own
        self.stream.flush()
