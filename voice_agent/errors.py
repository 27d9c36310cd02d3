"""Errors that map onto gRPC status codes, shared by every service."""

from __future__ import annotations

import grpc


class ServiceError(Exception):
    """An error the client should see, with the gRPC code that fits it."""

    code = grpc.StatusCode.INTERNAL


class InvalidArgument(ServiceError):
    """The request is malformed: the message names the problem."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class Unavailable(ServiceError):
    """The service cannot serve now (model loading, draining); retry later."""

    code = grpc.StatusCode.UNAVAILABLE


class ResourceExhausted(ServiceError):
    """A capacity limit is reached; retry later."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unauthenticated(ServiceError):
    """The call carries no valid credential; the message says which check failed, never the token."""

    code = grpc.StatusCode.UNAUTHENTICATED
