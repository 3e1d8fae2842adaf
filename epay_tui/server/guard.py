"""A guard in uvicorn's HTTP/1.1 protocol: whole requests in time, and a connection cap.

uvicorn drops idle keep-alive connections, but a connection that sends half a request
(slowloris), or nothing at all, stays open for ever, and it accepts connections until
the process runs out of file descriptors. This protocol gives every request a deadline
from its first byte (from the connection for the first one) to its last byte, and
closes connections beyond a cap at once. A response may take as long as it needs (a
long poll), so the deadline ends when the request has arrived, not when it is answered.
"""

from __future__ import annotations

import asyncio
import logging
import resource

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("epay_tui.server")

_RECEIVING = (h11.IDLE, h11.SEND_BODY)
"""The client's states while its request has not fully arrived."""


class GuardedProtocol(H11Protocol):
    """HTTP/1.1 with a request deadline and a cap on open connections."""

    request_timeout: float = 30.0
    max_connections: int = 1000

    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            log.info("connection refused: %d open", len(self.connections) - 1)
            transport.close()
            return
        self._arm()  # a connection that never sends a whole request is dropped too

    def data_received(self, data: bytes) -> None:
        self._arm()  # the first byte of a request starts its clock
        super().data_received(data)
        if self.conn.their_state not in _RECEIVING:
            self._disarm()  # arrived whole: the answer may take its time

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state in _RECEIVING and self.conn.trailing_data[0]:
            self._arm()  # a pipelined request already under way

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.request_timeout, self._stalled)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _stalled(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            log.info("stalled request dropped after %.0f s", self.request_timeout)
            self.transport.close()


def guarded_protocol(request_timeout: float, max_connections: int) -> type[GuardedProtocol]:
    """The protocol class for uvicorn's ``http=`` with these limits."""
    room_for(max_connections)
    return type(
        "GuardedProtocol",
        (GuardedProtocol,),
        {"request_timeout": request_timeout, "max_connections": max_connections},
    )


def room_for(connections: int) -> None:
    """Raise the soft limit of open files so the cap, not the OS, refuses connections."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + 256  # the database, the log, the gateway's own connections
    if soft != resource.RLIM_INFINITY and soft < wanted:
        raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
