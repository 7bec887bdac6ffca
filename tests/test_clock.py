"""The sleep every provider wait and --wait loop uses."""

from __future__ import annotations

import pytest


def test_a_sleep_the_os_refuses_waits_on_a_monotonic_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under libfaketime a wall-clock step in the middle of a sleep made time.sleep fail
    with EINVAL, and a watch pass died of it (an internal error)."""
    import errno
    import time

    from reconciler import clock

    def refused(seconds: float) -> None:
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(clock.time, "sleep", refused)
    started = time.monotonic()
    clock.steady_sleep(0.05)
    assert time.monotonic() - started >= 0.045
