"""The bounded worker pool: results and errors pass through, the wall-time limit answers 503 (and a
call still queued never runs), the bound refuses at once, and cancelling the caller is not a timeout."""

from __future__ import annotations

import asyncio
import threading

import pytest

from leukos.service.workers import ServiceBusy, WorkPool


def _run(coro):
    return asyncio.run(coro)


def test_results_and_errors_pass_through_and_run_off_the_loop():
    pool = WorkPool(2, 4, 5.0)
    loop_thread = threading.get_ident()
    try:
        assert _run(pool.run(lambda a, b: (a + b, threading.get_ident() != loop_thread), 2, 3)) == (5, True)
        with pytest.raises(ValueError, match="bad"):
            _run(pool.run(lambda: (_ for _ in ()).throw(ValueError("bad"))))
        assert pool.pending == 0
    finally:
        pool.shutdown()


def test_over_the_wall_time_is_503_and_a_queued_call_never_runs():
    release, ran = threading.Event(), []
    pool = WorkPool(1, 1, 0.2)

    async def go():
        stuck = asyncio.ensure_future(pool.run(release.wait, 10))
        await asyncio.sleep(0.05)
        with pytest.raises(ServiceBusy) as queued:
            await pool.run(ran.append, "queued")  # waits behind the stuck call, then times out
        with pytest.raises(ServiceBusy) as timed_out:
            await stuck
        return queued.value, timed_out.value

    try:
        queued, timed_out = _run(go())
        assert "did not finish within 0.2 s" in timed_out.reason and timed_out.retry_after_s == 1
        assert "did not finish" in queued.reason
    finally:
        release.set()
        pool.shutdown()
    assert ran == [], "the queued call was cancelled before it started"


def test_the_bound_refuses_at_once_and_frees_its_slots():
    release = threading.Event()
    pool = WorkPool(1, 1, 5.0)

    async def go():
        held = [asyncio.ensure_future(pool.run(release.wait, 5)) for _ in range(2)]
        await asyncio.sleep(0.05)
        with pytest.raises(ServiceBusy, match="busy"):
            await pool.run(lambda: None)
        release.set()
        await asyncio.gather(*held)
        return await pool.run(lambda: "free again")

    try:
        assert _run(go()) == "free again"
        assert pool.pending == 0
    finally:
        release.set()
        pool.shutdown()


def test_cancelling_the_caller_is_a_cancellation_not_a_timeout():
    release = threading.Event()
    pool = WorkPool(1, 0, 5.0)

    async def go():
        call = asyncio.ensure_future(pool.run(release.wait, 5))
        await asyncio.sleep(0.05)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call

    try:
        _run(go())
    finally:
        release.set()
        pool.shutdown()


def test_a_call_outliving_its_loop_finishes_quietly_and_frees_its_slot():
    """Over the wall time the caller gets 503 and may be gone with its event loop when the call ends:
    the worker then has nowhere to hand the result, says nothing, and the slot is freed."""
    release, finished, thread_errors = threading.Event(), threading.Event(), []
    pool = WorkPool(1, 0, 0.1)
    old_hook = threading.excepthook
    threading.excepthook = thread_errors.append

    def slow():
        release.wait(5)
        finished.set()
        return "late"

    try:
        with pytest.raises(ServiceBusy, match="did not finish"):
            _run(pool.run(slow))  # asyncio.run closes its loop on the way out
        assert pool.pending == 1, "the call still runs and keeps its slot"
        release.set()
        assert finished.wait(5)
        for _ in range(100):
            if pool.pending == 0:
                break
            threading.Event().wait(0.01)
        assert pool.pending == 0 and thread_errors == []
        assert _run(pool.run(lambda: "free again")) == "free again"
    finally:
        threading.excepthook = old_hook
        release.set()
        pool.shutdown()


def test_exceptions_keep_their_type_and_traceback():
    pool = WorkPool(1, 0, 5.0)

    def deep():
        raise KeyError("in the worker")

    try:
        with pytest.raises(KeyError) as err:
            _run(pool.run(deep))
        assert any(frame.name == "deep" for frame in __import__("traceback").extract_tb(err.value.__traceback__))
    finally:
        pool.shutdown()
