"""Waiting for a state another thread or process brings about, with a deadline.

A tool waits for the state it needs (a server up, a request answered) rather than for a time that is
usually long enough. The deadline only bounds a wait that would otherwise hang; it says nothing about
speed, and the error it raises names what never happened.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0, interval: float = 0.1) -> None:
    """Return as soon as ``condition()`` holds; raise :class:`TimeoutError` naming ``what`` when it
    still does not after ``timeout`` seconds.

    ``what`` says what is awaited ("redis-server to be ready", "the run finished"). An exception of
    ``condition`` itself propagates: a check that knows the state will never come (a server that
    exited) fails at once instead of running out the clock.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)
