"""Emulated time: the wall clock sped up by a factor, plus manual advances.

``now() = anchor_emulated + (real() - anchor_real) * speed``. The anchor is saved in
the state file whenever it moves, so a restarted emulator continues the same timeline
(the time it was down counts as having passed at the old speed, as it would for a
real provider that kept training while we were away).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from .store import Store

META_KEY = "clock"


class Clock:
    """Emulated Unix seconds. Thread-safe; ``real`` is injectable for tests."""

    def __init__(
        self,
        speed: float = 1.0,
        *,
        real: Callable[[], float] = time.time,
        start: float | None = None,
    ) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be > 0, not {speed!r}")
        self._real = real
        self._lock = threading.Lock()
        self._speed = float(speed)
        self._anchor_real = real()
        self._anchor_emu = self._anchor_real if start is None else float(start)
        self._store: Store | None = None

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> float:
        with self._lock:
            return self._anchor_emu + (self._real() - self._anchor_real) * self._speed

    def real_seconds(self, emulated: float) -> float:
        """How long ``emulated`` seconds take in real time at the current speed."""
        return emulated / self._speed

    def advance(self, seconds: float) -> float:
        """Jump forward (never back: derived job histories must not rewind)."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._anchor_emu += seconds
        self._save()
        return self.now()

    def set_speed(self, speed: float) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be > 0, not {speed!r}")
        with self._lock:
            real = self._real()
            self._anchor_emu += (real - self._anchor_real) * self._speed
            self._anchor_real = real
            self._speed = float(speed)
        self._save()

    # ------------------------------------------------------------ persistence

    def attach(self, store: Store) -> None:
        """Continue the timeline saved in ``store`` (if any) and save it from now on."""
        saved = store.meta(META_KEY)
        with self._lock:
            if isinstance(saved, dict):
                real = self._real()
                elapsed = max(0.0, real - float(saved["anchor_real"]))
                self._anchor_emu = float(saved["anchor_emu"]) + elapsed * float(saved["speed"])
                self._anchor_real = real
        self._store = store
        self._save()

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "anchor_real": self._anchor_real,
                "anchor_emu": self._anchor_emu,
                "speed": self._speed,
            }

    def _save(self) -> None:
        if self._store is not None:
            self._store.set_meta(META_KEY, self.state())
