"""Progress of long commands on stderr, never on stdout (which may carry the results).

Why here and not tqdm alone: tqdm is not a runtime dependency (`pip install escalation-guard` has numpy,
onnxruntime, tokenizers and pyyaml), and without it `serving score` over a large file or `serving bench`
(about 90 s) ran silent. `Bar` draws a tqdm bar when tqdm is there and prints a line every `every_s` seconds
otherwise; `Steps` prints one line per phase of a command whose work is a known list of phases.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


class Bar:
    """Items done out of `total`: a tqdm bar, or (without tqdm, or when `plain`) a line every `every_s` s."""

    def __init__(
        self,
        total: int,
        desc: str,
        unit: str = "it",
        *,
        stream: TextIO | None = None,
        every_s: float = 10.0,
        plain: bool = False,
    ) -> None:
        self.total, self.desc, self.unit, self.every_s = total, desc, unit, every_s
        self.stream = stream or sys.stderr
        self.done, self.t0 = 0, time.monotonic()
        self._last = self.t0
        self._tqdm: Any = None
        if not plain:
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self._tqdm = tqdm(total=total, desc=desc, unit=unit, file=self.stream, dynamic_ncols=True)

    def update(self, n: int = 1) -> None:
        self.done += n
        if self._tqdm is not None:
            self._tqdm.update(n)
            return
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            self._line(now)

    def _line(self, now: float) -> None:
        share = f" ({self.done / self.total:.0%})" if self.total else ""
        print(f"{self.desc}: {self.done}/{self.total} {self.unit}{share}, {now - self.t0:.0f} s", file=self.stream)

    def close(self) -> None:
        if self._tqdm is not None:
            self._tqdm.close()
        elif self.done:
            self._line(time.monotonic())


class Steps:
    """One line per phase, with the seconds since the first: `bench [3/14] onnx_int8: latency at ~64 tokens
    (12.4 s)`. With `total` the counter is added here; without, the caller's text carries its own."""

    def __init__(self, desc: str, total: int | None = None, *, stream: TextIO | None = None) -> None:
        self.desc, self.total, self.n = desc, total, 0
        self.stream = stream or sys.stderr
        self.t0 = time.monotonic()

    def __call__(self, what: str) -> None:
        self.n += 1
        of = f" [{self.n}/{self.total}]" if self.total else ""
        print(f"{self.desc}{of} {what} ({time.monotonic() - self.t0:.1f} s)", file=self.stream, flush=True)
