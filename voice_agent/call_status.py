"""The status a grpc.aio streaming call really ended with, written once for every client.

grpc/grpc#36066: when a server ends a stream while the client is still writing,
grpc.aio can replace the server's status with a made-up INTERNAL. The gateway's
clients (the mobile-style ``Conversation``) and the gateway itself (its ASR
and TTS streams) both write while the server may end the stream.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

import grpc

_T = TypeVar("_T")
# The details of the status grpc.aio makes up on the client when a write fails (see ``ServerStatus``).
FAILED_WRITE_DETAILS = "Internal error from Core"


class ServerStatus:
    """The status a call ended with first: the server's, which grpc.aio may overwrite afterwards.

    grpc/grpc#36066: when the server ends a stream while the client is still writing (the
    gateway refuses a session before it reads any message; a limit or a drain ends one
    mid-audio), the write in flight fails, and grpc.aio (``_StreamRequestMixin._write``)
    then replaces the status the server sent with INTERNAL "Internal error from Core": the
    read that meets the end of the stream raises that, and the call reports it from then on.
    Waiting for the status (``await call.code()``) does not help: the failed write's task may
    run before the waiter's. A done callback runs inside grpc.aio as the first status is set,
    before anything can replace it, so the status is copied there.
    """

    def __init__(self, call: grpc.aio.Call) -> None:
        self.error: grpc.aio.AioRpcError | None = None
        self._kept = False
        call.add_done_callback(self._keep)

    def _keep(self, call: grpc.aio.Call) -> None:
        if self._kept:  # some grpc versions run done callbacks again on each status set: keep the first
            return
        self._kept = True
        code = _settled(call.code())
        if code is None or code == grpc.StatusCode.OK:
            return
        self.error = grpc.aio.AioRpcError(
            code,
            _settled(call.initial_metadata()) or grpc.aio.Metadata(),
            _settled(call.trailing_metadata()) or grpc.aio.Metadata(),
            _settled(call.details()),
            _settled(call.debug_error_string()),
        )

    def of(self, error: grpc.aio.AioRpcError) -> grpc.aio.AioRpcError:
        """``error``, or the server's status where ``error`` is the INTERNAL grpc.aio made up for a failed write."""
        kept = self.error
        return kept if kept is not None and is_failed_write(error) and not is_failed_write(kept) else error


def _settled(read: Coroutine[Any, Any, _T]) -> _T | None:
    """The result of one of a done call's status getters, run to its end here (a done callback
    cannot await): the status is set, so it returns without suspending. None where it would
    suspend or fails (a grpc that works otherwise): the callback runs inside grpc, never raise there."""
    try:
        read.send(None)
    except StopIteration as finished:
        return finished.value
    except Exception:
        return None
    read.close()
    return None


def is_failed_write(error: grpc.aio.AioRpcError) -> bool:
    """``error`` is the status grpc.aio made up for a failed write, not one a server sent."""
    return error.code() == grpc.StatusCode.INTERNAL and error.details() == FAILED_WRITE_DETAILS
