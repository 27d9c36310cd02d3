"""What it takes to run a service and to tell that it is ready: each service declares its own
``ServiceSpec`` next to its config (``SERVICE`` in ``services/<name>/config.py``,
``gateway/config.py``); the embedded stack (``voice_ops.stack``) starts what they declare.
"""

from __future__ import annotations

import argparse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from voice_agent.config import Config

LOCAL_HOST = "127.0.0.1"


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    #: What ``python -m`` runs.
    module: str
    config: type[Config]
    #: An HTTP path that answers 200 once the service is ready; None: the gRPC health service.
    http_ready_path: str | None = None

    def address(self) -> str:
        return f"{LOCAL_HOST}:{self.config.from_env().port}"  # type: ignore[attr-defined]

    def settings(self, args: Sequence[str]) -> Config | None:
        """What a process started with ``args`` runs with: its config, parsed from the same flags and
        the same environment as the process itself parses them. None where its config does not parse
        them (a process that takes more than its config, such as the benchmarks' fakes, or a bad
        setting, which the process itself reports when it exits)."""
        parser = argparse.ArgumentParser(add_help=False)
        self.config.add_arguments(parser)
        namespace, unknown = parser.parse_known_args(list(args))
        if unknown:
            return None
        try:
            return self.config.from_env(**vars(namespace))
        except ValueError:
            return None

    def is_serving(self, address: str, credentials: grpc.ChannelCredentials | None = None) -> bool:
        if self.http_ready_path is None:
            return is_serving(address, credentials=credentials)
        return http_ready(f"http://{address}{self.http_ready_path}")


def is_serving(address: str, timeout_s: float = 1.0, credentials: grpc.ChannelCredentials | None = None) -> bool:
    """Whether the gRPC health service at ``address`` says SERVING; over TLS with ``credentials``."""
    channel = grpc.insecure_channel(address) if credentials is None else grpc.secure_channel(address, credentials)
    with channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout_s)
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def http_ready(url: str, timeout_s: float = 3.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as reply:
            return reply.status == 200
    except (OSError, ValueError):
        return False
