"""The training clock: a stopwatch around training only, and per-step time marks.

On CUDA, step marks are CUDA events, resolved when the losses are read back (no host sync per
step); the stopwatch synchronises only where it reads (start, stop). Evaluation, compile
warm-up and start-up happen while the stopwatch is stopped.
"""

from __future__ import annotations

import time

import torch


class Clock:
    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.device = device
        self.total = 0.0
        self._start = None
        self._step_host = 0.0

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def start(self):
        self.sync()
        self._start = time.perf_counter()

    def stop(self):
        self.sync()
        self.total += time.perf_counter() - self._start
        self._start = None

    def step_begin(self):
        self._step_host = time.perf_counter()
        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            return ev
        return self._step_host

    def stall(self, fraction: float) -> None:
        """A planted slowdown (the debug_slowdown option, for benchmarks): wait `fraction` of the
        step's time so far, inside the step (on CUDA after a sync, so the wait adds to the step). The
        wait spins on the clock: time.sleep overshoots by tens of microseconds, a step of B = 1 takes
        about 3 ms, so a sleep would plant more than asked."""
        self.sync()
        now = time.perf_counter()
        end = now + fraction * (now - self._step_host)
        while now < end:
            now = time.perf_counter()

    def step_end(self, begin):
        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            return (begin, ev)
        return time.perf_counter() - begin

    def resolve(self, mark) -> float:
        """Seconds of a step mark (waits for a CUDA step's end event)."""
        if self.cuda:
            begin, end = mark
            end.synchronize()
            return begin.elapsed_time(end) / 1000.0
        return mark
