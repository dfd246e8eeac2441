"""SIGTERM and SIGINT end a run with a word, a resumable state and the shell's exit status.

``timeout``, SLURM, ``docker stop`` and a sweep's launcher stop a process with SIGTERM; Ctrl+C
sends SIGINT. Python ends on the first without a word (and Lightning turns it into an exit
status of 0), on the second with a traceback. Here both become :class:`Interrupted`, which
names the phase it cut short; the command line prints one line saying how to resume and exits
with ``128 + signal`` (130 for SIGINT, 143 for SIGTERM), as a shell reports a process killed
by the signal.

- :func:`handle_signals` installs the handlers for the life of a command (main thread only).
- :func:`interruptible` names what runs. In a plain phase (fitting drift, scoring, predicting) the
  handler raises :class:`Interrupted` at once; outputs are written atomically, so nothing
  half-written is left. In a ``lightning`` phase (``trainer.fit``, ``trainer.test``) the
  handler only records the signal: Lightning's own handler stops the loop at the next batch
  (SIGTERM) or shuts down gracefully (SIGINT), with ``checkpoints/last.ckpt`` from the last
  finished epoch, and the phase turns its exit into :class:`Interrupted`; before Lightning
  listens (preparing data, restoring a checkpoint), the signal stops the phase at once.
  Lightning's SLURM auto-requeue (SIGUSR1) is left alone.
- A second signal stops the process at once, whatever the first was waiting for; forked
  workers (data loaders, cache pools) keep the default behaviour, so only the main process
  speaks.

:class:`Interrupted` derives from ``BaseException``, as ``KeyboardInterrupt`` does, so that no
``except Exception`` on the way swallows it.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

#: The signals handled, by name.
SIGNALS: dict[int, str] = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}


class Interrupted(BaseException):
    """A run stopped by ``signum`` during ``phase``."""

    def __init__(self, signum: int, phase: str) -> None:
        self.signum = signum
        self.phase = phase
        super().__init__(f"interrupted by {SIGNALS.get(signum, signum)} during {phase}")

    @property
    def exit_code(self) -> int:
        """What a shell reports for a process the signal killed: 130, 143."""
        return 128 + int(self.signum)


_state: dict[str, object] = {"phase": "start-up", "lightning": False, "received": None,
                             "pid": None}


def received() -> int | None:
    """The signal received since :func:`handle_signals` started, if any."""
    value = _state["received"]
    return None if value is None else int(value)  # type: ignore[call-overload]


def current_phase() -> str:
    return str(_state["phase"])


def _handler(signum: int, frame: FrameType | None) -> None:
    if os.getpid() != _state["pid"]:  # a forked worker (data loader, cache pool): as by default
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    first = _state["received"] is None
    _state["received"] = signum
    if not first:  # a second signal: stop now, whatever the first was waiting for
        raise Interrupted(signum, current_phase())
    if _state["lightning"]:
        if signum == signal.SIGINT:
            raise KeyboardInterrupt  # Lightning's graceful shutdown; the phase says the rest
        if signal.getsignal(signal.SIGTERM) is not _handler:
            return  # Lightning listens: its own handler stops the loop at the next batch
    raise Interrupted(signum, current_phase())


@contextmanager
def handle_signals() -> Iterator[None]:
    """SIGTERM and SIGINT raise :class:`Interrupted` (see the module docstring) while inside."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach the main thread only
        return
    previous = {signum: signal.getsignal(signum) for signum in SIGNALS}
    _state.update(phase="start-up", lightning=False, received=None, pid=os.getpid())
    for signum in SIGNALS:
        signal.signal(signum, _handler)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextmanager
def interruptible(name: str, lightning: bool = False) -> Iterator[None]:
    """Run the block as phase ``name``; ``lightning``: a Lightning loop runs in it."""
    outer = dict(_state)
    _state.update(phase=name, lightning=lightning)
    try:
        yield
    except (SystemExit, KeyboardInterrupt) as exit_:
        # Lightning ends a loop on SIGTERM with SIGTERMException (a SystemExit of status 0)
        # and on SIGINT with sys.exit(1): both are the signal's doing.
        signum = received()
        if signum is None:
            raise
        raise Interrupted(signum, name) from exit_
    finally:
        _state.update(phase=outer["phase"], lightning=outer["lightning"])
    signum = received()
    if signum is not None:  # the loop ended on its own after the signal came
        raise Interrupted(signum, name)


__all__ = ["SIGNALS", "Interrupted", "current_phase", "handle_signals", "interruptible", "received"]
