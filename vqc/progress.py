"""Progress of the long steps: a bar in a terminal, lines in a log.

Each step that may take more than a few seconds (generating the synthetic set, caching
images, fitting drift, scoring, figures) runs inside :func:`phase`: in a terminal a rich
progress bar shows it live; in any case the log gets one line when it ends,
``phase <name>: <n> images in <t> s``, and, when no terminal shows the bar, a line every
``every_s`` seconds while it runs, so that a log file shows where a run is.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

log = logging.getLogger("vqc.progress")

T = TypeVar("T")

#: Seconds between progress lines in a log when no terminal shows a bar.
EVERY_S = 30.0


def in_terminal() -> bool:
    """Whether a person watches: standard output (where rich draws) is a terminal."""
    stream = sys.stdout
    return bool(getattr(stream, "isatty", lambda: False)())


class Phase:
    """The count of one phase; :meth:`advance` after each batch."""

    def __init__(self, name: str, total: int | None, unit: str, every_s: float,
                 bar: Any = None, task: Any = None) -> None:
        self.name, self.total, self.unit, self.every_s = name, total, unit, every_s
        self.done = 0
        self.start = time.perf_counter()
        self._last_line = self.start
        self._bar, self._task = bar, task

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start

    def advance(self, n: int = 1) -> None:
        self.done += int(n)
        if self._bar is not None:
            self._bar.advance(self._task, n)
            return
        now = time.perf_counter()
        if now - self._last_line >= self.every_s:
            self._last_line = now
            of = f"/{self.total}" if self.total is not None else ""
            log.info("phase %s: %d%s %s, %.0f s so far", self.name, self.done, of, self.unit,
                     now - self.start)

    def track(self, batches: Iterable[T], size: Any = len) -> Iterator[T]:
        """Yield ``batches``, advancing by ``size(batch)`` after each."""
        for batch in batches:
            yield batch
            self.advance(size(batch))

    def line(self) -> str:
        return f"phase {self.name}: {self.done} {self.unit} in {self.seconds:.1f} s"


@contextmanager
def phase(name: str, total: int | None = None, unit: str = "images",
          every_s: float = EVERY_S, terminal: bool | None = None) -> Iterator[Phase]:
    """Run a phase: a transient rich bar in a terminal (``terminal``: ``None`` asks
    :func:`in_terminal`), one log line with its count and duration when it ends."""
    terminal = in_terminal() if terminal is None else terminal
    if terminal:
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            task = bar.add_task(name, total=total)
            current = Phase(name, total, unit, every_s, bar, task)
            yield current
    else:
        current = Phase(name, total, unit, every_s)
        yield current
    log.info(current.line())


@contextmanager
def lines_on_stderr() -> Iterator[None]:
    """The phase lines on this call's stderr, whatever logging the caller has set up (for a
    command without a logging set-up of its own): a handler of its own, removed afterwards."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    level, propagate = log.level, log.propagate
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
        log.propagate = propagate


def batch_rows(batch: Any) -> int:
    """Images in a ``(images, ...)`` batch or a tensor of images."""
    first = batch[0] if isinstance(batch, tuple | list) else batch
    return len(first)
