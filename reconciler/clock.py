"""Waiting: the one sleep every provider wait, ``--wait`` loop and webhook retry uses."""

from __future__ import annotations

import threading
import time


def steady_sleep(seconds: float) -> None:
    """``time.sleep``, except that a sleep the OS refuses (``EINVAL``: seen when the wall
    clock is stepped back in the middle of one, under libfaketime) waits on a lock with a
    monotonic timeout instead of failing the command."""
    try:
        time.sleep(seconds)
    except OSError:
        threading.Event().wait(seconds)
