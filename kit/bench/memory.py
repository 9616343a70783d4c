"""Peak memory and CPU time of one benchmark phase: the process and its DataLoader workers.

The kernel's own peak (``ru_maxrss``, ``VmHWM``) never goes down, so after the first phase it
says nothing about the next one. Instead a background thread sums the proportional set size
(PSS: shared pages split between the processes sharing them, so the memory-mapped cache and the
forked workers are not counted twice) of this process and all its descendants every
``interval`` seconds, and keeps the largest sum. Without ``/proc`` (macOS, Windows) it
measures nothing and reports None.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from types import TracebackType

__all__ = ["PeakMemory", "tree_cpu_seconds", "tree_pss_bytes"]

_PROC = Path("/proc")


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in (_PROC / str(pid) / "task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue  # the thread or process ended while we looked
    return out


def _pss_bytes(pid: int) -> int:
    """PSS of one process (``smaps_rollup``; RSS from ``status`` on kernels without it)."""
    base = _PROC / str(pid)
    for name, field in (("smaps_rollup", "Pss:"), ("status", "VmRSS:")):
        try:
            for line in (base / name).read_text().splitlines():
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            continue
    return 0


def tree_pss_bytes(pid: int | None = None) -> int | None:
    """PSS of process ``pid`` (default: this one) plus all its descendants; None without /proc."""
    root = os.getpid() if pid is None else pid
    if not (_PROC / str(root)).is_dir():
        return None
    return sum(_pss_bytes(p) for p in _descendants(root))


def _descendants(root: int) -> list[int]:
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        if p not in out:
            out.append(p)
            todo += _children(p)
    return out


def _cpu_ticks(pid: int) -> int:
    try:  # utime and stime, fields 14 and 15 of /proc/<pid>/stat, after the ")" of the name
        fields = (_PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, ValueError, IndexError):
        return 0  # the process ended while we looked


def tree_cpu_seconds() -> float:
    """CPU seconds used so far by this process (``time.process_time``) and its descendants (its
    DataLoader workers, from ``/proc`` in 10 ms ticks; none counted without ``/proc``)."""
    me = os.getpid()
    if not (_PROC / str(me)).is_dir():
        return time.process_time()
    ticks = sum(_cpu_ticks(p) for p in _descendants(me) if p != me)
    return time.process_time() + ticks / os.sysconf("SC_CLK_TCK")


class PeakMemory:
    """``with PeakMemory() as mem: ...`` then ``mem.peak_mib`` (None when not measurable)."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.start_bytes: int | None = None
        self.peak_bytes: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_until_stopped, daemon=True)

    def _sample(self) -> None:
        now = tree_pss_bytes()
        if now is not None:
            self.peak_bytes = now if self.peak_bytes is None else max(self.peak_bytes, now)

    def _sample_until_stopped(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> PeakMemory:
        self.start_bytes = tree_pss_bytes()
        self.peak_bytes = self.start_bytes
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def peak_mib(self) -> float | None:
        """The largest sample, in MiB."""
        return None if self.peak_bytes is None else round(self.peak_bytes / 2**20, 1)

    @property
    def start_mib(self) -> float | None:
        """The sample taken when the phase started, in MiB."""
        return None if self.start_bytes is None else round(self.start_bytes / 2**20, 1)
