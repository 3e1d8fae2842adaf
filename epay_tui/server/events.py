"""Wake long polls when an order changes, from any thread and from other workers."""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from collections.abc import Callable


class OrderEvents:
    """Per-order change signals for ``GET /orders/{no}?wait=``.

    ``publish`` may be called from worker threads; waiters live on the server's
    event loop and are woken with ``call_soon_threadsafe``. ``relay`` carries the word
    to the other workers, whose listeners call :meth:`wake`.
    """

    def __init__(self, relay: Callable[[str], None] | None = None) -> None:
        self.relay = relay
        self._waiters: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = (
            defaultdict(set)
        )
        self._lock = threading.Lock()
        self.closed = False

    def subscribe(self, order_no: str) -> asyncio.Event:
        event = asyncio.Event()
        if self.closed:  # shutting down: no new waits
            event.set()
        with self._lock:
            self._waiters[order_no].add((asyncio.get_running_loop(), event))
        return event

    def unsubscribe(self, order_no: str, event: asyncio.Event) -> None:
        with self._lock:
            waiters = self._waiters.get(order_no)
            if waiters is None:
                return
            waiters.discard((asyncio.get_running_loop(), event))
            if not waiters:
                del self._waiters[order_no]

    def publish(self, order_no: str) -> None:
        """``order_no`` changed here: wake its long polls in this worker and in the others."""
        self.wake(order_no)
        if self.relay is not None and not self.closed:
            self.relay(order_no)

    def wake(self, order_no: str) -> None:
        """Wake this worker's long polls on ``order_no`` (they read the order again)."""
        with self._lock:
            waiters = list(self._waiters.get(order_no, ()))
        for loop, event in waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(event.set)

    def waiting(self, order_no: str) -> bool:
        """Whether a long poll on ``order_no`` waits in this worker now."""
        with self._lock:
            return bool(self._waiters.get(order_no))

    def wake_all(self) -> None:
        """Wake every long poll of this worker (word of a change may have been missed)."""
        with self._lock:
            keys = list(self._waiters)
        for order_no in keys:
            self.wake(order_no)

    def close(self) -> None:
        """Wake every long poll so it answers now (the server is stopping)."""
        self.closed = True
        self.wake_all()
