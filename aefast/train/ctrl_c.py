"""Ctrl-C (SIGINT) during training: the first one stops the run, every later one is only counted.

`ctrl_c_handled()` installs a `CtrlC` as the SIGINT handler for a block. The first Ctrl-C raises KeyboardInterrupt
(the loop then rolls back to its checkpoint and finishes the run directory); after that one, or once `defer()` is
called, each Ctrl-C is counted in `pressed`, and the first of them prints one line. The switch is made inside the
signal handler, so a second Ctrl-C can never raise while the first one's KeyboardInterrupt unwinds model.fit or
while files are written.

Blocks nest: an inner block (the loop's) shares the handler of an outer one (the command line's), so presses
stay deferred from the end of the run until the command returns. Handlers can be set only from the main thread;
elsewhere Ctrl-C is left alone and nothing is deferred.
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Iterator


class CtrlC:
    def __init__(self) -> None:
        self.pressed: list[int] = []
        self.raise_next = True
        self.said = False
        self.ignore_after = False   # set by a program's entry point: SIGINT stays ignored after the block

    def handler(self, signum, frame) -> None:
        self.pressed.append(signum)
        if self.raise_next:
            self.raise_next = False
            raise KeyboardInterrupt
        if not self.said:   # the first deferred press says so; the others are only counted
            self.said = True
            _say("aefast.train: finishing the run directory first (a few seconds)\n")

    def defer(self) -> None:
        """From now on Ctrl-C is only counted."""
        self.raise_next = False


def _say(text: str) -> None:
    """One line to stderr's file descriptor: os.write, because the handler may run inside a print to sys.stderr,
    which print cannot re-enter (RuntimeError "reentrant call")."""
    try:
        os.write(sys.stderr.fileno(), text.encode("utf-8", "backslashreplace"))
    except (AttributeError, OSError, ValueError):   # no file descriptor (captured stderr): say nothing
        pass


@contextlib.contextmanager
def ctrl_c_handled() -> Iterator[CtrlC]:
    """A CtrlC handling SIGINT for the block (the enclosing block's, if one is active); after it, the previous
    handler is restored, or SIGINT is ignored if the CtrlC's ignore_after was set."""
    if threading.current_thread() is not threading.main_thread():
        yield CtrlC()
        return
    outer = getattr(signal.getsignal(signal.SIGINT), "__self__", None)
    if isinstance(outer, CtrlC):
        yield outer
        return
    ctrl_c = CtrlC()
    previous = signal.signal(signal.SIGINT, ctrl_c.handler)
    try:
        yield ctrl_c
    finally:
        # ignore_after: no moment between this block and the process's exit has the default handler back.
        signal.signal(signal.SIGINT, signal.SIG_IGN if ctrl_c.ignore_after else previous)
