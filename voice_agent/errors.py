"""Errors that map onto gRPC status codes, shared by every service."""

from __future__ import annotations

import grpc

Metadata = tuple[tuple[str, str], ...]

#: Trailing metadata of RESOURCE_EXHAUSTED (and of a drained stream): milliseconds to wait before trying again.
RETRY_AFTER_KEY = "retry-after-ms"
#: Trailing metadata of a stream a server ended because it shuts down, at a point where nothing was lost.
DRAINED_KEY = "voice-drained"


class ServiceError(Exception):
    """An error the client should see, with the gRPC code that fits it, and trailing metadata if any."""

    code = grpc.StatusCode.INTERNAL

    def __init__(self, message: str, *, trailing_metadata: Metadata = ()) -> None:
        super().__init__(message)
        self.trailing_metadata = trailing_metadata


class InvalidArgument(ServiceError):
    """The request is malformed: the message names the problem."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(ServiceError):
    """No such thing, or one the caller may not see: the two are told apart by nobody."""

    code = grpc.StatusCode.NOT_FOUND


class Unavailable(ServiceError):
    """The service cannot serve now (model loading, draining); retry later."""

    code = grpc.StatusCode.UNAVAILABLE


class ResourceExhausted(ServiceError):
    """A capacity limit is reached; retry later."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class DeadlineExceeded(ServiceError):
    """A backend or the session ran past its time limit."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Draining(Unavailable):
    """The server is shutting down and ended the stream where nothing was lost: reconnect and go on."""

    def __init__(self, message: str) -> None:
        super().__init__(message, trailing_metadata=((DRAINED_KEY, "1"), (RETRY_AFTER_KEY, "0")))


class Unauthenticated(ServiceError):
    """The call carries no valid credential; the message says which check failed, never the token."""

    code = grpc.StatusCode.UNAUTHENTICATED


def quoted(value: str, limit: int = 64) -> str:
    """A client's string for an error message, cut short: the message travels in the status
    trailer, and one over the client's metadata limit (16 KiB) would turn a clear
    INVALID_ARGUMENT into RESOURCE_EXHAUSTED "Stream removed"."""
    return repr(value if len(value) <= limit else value[:limit] + "…")
