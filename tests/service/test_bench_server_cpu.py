"""The load benchmark's reading of the server's CPU per call (benchmarks/service_peers/loadgen.py).

The benchmark reports, beside the throughput, what a call costs the server in CPU, with the
event-loop thread apart from the worker threads. These tests check that reading on this very
process: CPU spent in another thread is counted there and not as the event loop's, and the per-call
figures are the CPU of the window divided by the calls that ended in it.
"""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

from .conftest import REPO

sys.path.insert(0, str(REPO))
from benchmarks.service_peers.loadgen import _cpu_per_call, _thread_cpu  # noqa: E402

pytestmark = pytest.mark.skipif(not os.path.isdir(f"/proc/{os.getpid()}/task"), reason="needs Linux /proc")


def _burn(seconds: float, burnt: threading.Event, read: threading.Event) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass
    burnt.set()
    read.wait(10)  # a thread that has ended leaves /proc/<pid>/task: stay until the CPU is read


def test_cpu_of_a_worker_thread_is_counted_apart_from_the_main_thread() -> None:
    pid = os.getpid()
    before = _thread_cpu(pid)
    burnt, read = threading.Event(), threading.Event()
    worker = threading.Thread(target=_burn, args=(0.3, burnt, read))
    worker.start()
    burnt.wait(10)
    after = _thread_cpu(pid)
    read.set()
    worker.join()
    assert before is not None and after is not None
    assert pid in before and pid in after  # the main thread's id is the process id
    split = _cpu_per_call(pid, before, after, calls=1)
    assert split is not None
    # the worker's 0.3 s of CPU (clock ticks of 10 ms: allow two either way) is not the main thread's
    assert 280 <= split["other_threads_ms"] <= 400
    assert split["event_loop_ms"] < split["other_threads_ms"]
    assert split["total_ms"] == pytest.approx(split["event_loop_ms"] + split["other_threads_ms"], abs=0.002)


def test_per_call_figures_divide_the_window_by_its_calls() -> None:
    before = {10: 1.0, 11: 2.0}
    after = {10: 1.5, 11: 4.0, 12: 0.5}  # thread 12 started inside the window
    assert _cpu_per_call(10, before, after, calls=100) == {"total_ms": 30.0, "event_loop_ms": 5.0,
                                                          "other_threads_ms": 25.0}


def test_no_figure_without_a_reading_or_a_call() -> None:
    assert _cpu_per_call(10, None, {10: 1.0}, calls=5) is None
    assert _cpu_per_call(10, {10: 1.0}, {10: 2.0}, calls=0) is None
    assert _thread_cpu(2 ** 22 + 12345) is None  # no such process
