"""Bounds on the work one client can make the service do: fair scoring slots and per-client rates.

Why: scoring is CPU-bound and the machine has few cores. Without a bound, a dozen large requests hold
every core (and the memory of every batch in flight) while small requests from everyone else wait behind
them. The service therefore scores on a fixed number of slots, hands a slot to waiting requests between
chunks of a large one (so a small request waits at most one chunk, not one whole conversation), and
refuses quickly when the queue is long instead of letting latency grow without limit.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque


class Busy(Exception):
    """No scoring slot came free in time: the caller answers 503 with Retry-After."""


class Cancelled(Exception):
    """The work was stopped between chunks (the client left, or the request ran past its deadline)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FairSlots:
    """A counting semaphore that serves waiters first come, first served, and can be yielded mid-work.

    `threading.Semaphore` lets a thread that releases and immediately re-acquires barge ahead of waiters;
    here a released slot is handed straight to the oldest waiter, so `yield_turn` really lets it in.
    """

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError("slots must be >= 1")
        self._free = slots
        self._lock = threading.Lock()
        self._waiters: deque[threading.Event] = deque()

    @property
    def waiting(self) -> int:
        with self._lock:
            return len(self._waiters)

    def acquire(self, timeout: float) -> None:
        """Take a slot within `timeout` seconds, or raise Busy."""
        with self._lock:
            if self._free and not self._waiters:
                self._free -= 1
                return
            granted = threading.Event()
            self._waiters.append(granted)
        if granted.wait(timeout):
            return
        with self._lock:
            if granted.is_set():  # handed over between the timeout and the lock
                return
            self._waiters.remove(granted)
        raise Busy(f"no scoring slot free within {timeout:g} s")

    def release(self) -> None:
        with self._lock:
            if self._waiters:
                self._waiters.popleft().set()  # the slot passes directly to the oldest waiter
            else:
                self._free += 1

    def yield_turn(self, timeout: float) -> None:
        """Between chunks of long work: if anyone waits, give them the slot and queue again for one."""
        with self._lock:
            if not self._waiters:
                return
        self.release()
        self.acquire(timeout)


class TokenBuckets:
    """Per-key rate limit (`rate` per second, bursts of `burst`), for at most `max_keys` recent keys."""

    def __init__(self, rate: float, burst: float, max_keys: int = 10_000) -> None:
        self.rate, self.burst, self.max_keys = float(rate), float(burst), int(max_keys)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str, now: float | None = None) -> float:
        """0.0 when `key` may go ahead (one token spent), else the seconds until it may."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, then = self._buckets.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - then) * self.rate)
            wait = 0.0 if tokens >= 1 else (1 - tokens) / self.rate
            self._buckets[key] = (tokens - 1 if wait == 0.0 else tokens, now)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
            return wait
