"""A bounded worker pool: CPU-bound work (parsing, validation, rules, rendering) off the event loop.

Handlers read the body on the event loop, then ``await pool.run(fn, ...)``. The pool bounds both
how many calls run at once (``workers`` threads) and how many may wait (``queue``): beyond that a
call is refused at once with :class:`ServiceBusy` (HTTP 503 + ``Retry-After``) instead of queueing
without end. A call that does not finish within ``timeout_s`` (wall time, queueing included) is
answered 503 too; its thread finishes in the background (Python cannot stop a thread), but it keeps
its slot until then, so a flood of slow requests can never hold more than ``workers`` threads.

The input limits of :mod:`leukos.interop.limits` keep each call short; this pool is the second line.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["WorkPool", "ServiceBusy"]

T = TypeVar("T")


class ServiceBusy(Exception):
    """The service cannot take or finish this call now (HTTP 503 with ``Retry-After``)."""

    def __init__(self, reason: str, retry_after_s: int):
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


class WorkPool:
    """``workers`` threads, at most ``queue`` waiting calls, ``timeout_s`` wall time per call."""

    def __init__(self, workers: int, queue: int, timeout_s: float, *, name: str = "leukos-work"):
        self.workers, self.queue, self.timeout_s = workers, queue, timeout_s
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._pending = 0
        self._lock = threading.Lock()

    @property
    def pending(self) -> int:
        return self._pending

    def _release(self, _future: Any = None) -> None:
        with self._lock:
            self._pending -= 1

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        with self._lock:
            if self._pending >= self.workers + self.queue:
                raise ServiceBusy(f"the service is busy ({self._pending} calls in progress)",
                                  retry_after_s=max(1, int(self.timeout_s // 2)))
            self._pending += 1
        try:
            future = self._executor.submit(fn, *args)
        except BaseException:
            self._release()
            raise
        future.add_done_callback(self._release)
        # The wall-time limit is a timer on the loop that cancels the awaited future (what
        # asyncio.wait_for did, without its extra future, callbacks and loop round per call).
        loop = asyncio.get_running_loop()
        waiter = asyncio.wrap_future(future, loop=loop)
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            waiter.cancel()  # and so the pool's future: a call still queued never starts

        timer = loop.call_later(self.timeout_s, expire)
        try:
            return await waiter
        except asyncio.CancelledError:
            if not expired:  # the caller itself was cancelled (shutdown, client gone): not a timeout
                raise
            future.cancel()
            raise ServiceBusy(f"the call did not finish within {self.timeout_s:g} s",
                              retry_after_s=max(1, int(self.timeout_s))) from None
        finally:
            timer.cancel()

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
