"""Transport security, written once: TLS and mTLS credentials for every gRPC server and client.

A server with a certificate and key serves TLS; with a client CA as well it
requires client certificates signed by that CA (mTLS). A channel with a CA
verifies the server against it; with a client certificate and key as well it
presents them (mTLS). Files are PEM and are read once, at start: a missing or
unreadable file stops the process rather than leave it in plaintext.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import grpc

from voice_agent.handlers import wrap_handler

HEALTH_METHOD_PREFIX = "/grpc.health.v1.Health/"


def _read(path: str, what: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ValueError(f"cannot read the {what} {path!r}: {error.strerror or error}") from error
    if b"-----BEGIN" not in data:
        raise ValueError(f"the {what} {path!r} is not PEM")
    return data


def server_credentials(cert_file: str, key_file: str, client_ca_file: str = "") -> grpc.ServerCredentials:
    """TLS with this certificate (chain) and key; a client CA makes client certificates required (mTLS)."""
    cert = _read(cert_file, "TLS certificate")
    pair = (_read(key_file, "TLS key"), cert)
    if not client_ca_file:
        return grpc.ssl_server_credentials([pair])
    client_ca = _read(client_ca_file, "client CA")
    return grpc.ssl_server_credentials([pair], root_certificates=client_ca, require_client_auth=True)


def channel_credentials(ca_file: str = "", cert_file: str = "", key_file: str = "") -> grpc.ChannelCredentials:
    """Verifies the server against ``ca_file`` (empty: the system's roots); a certificate and key are
    presented to servers that require them (mTLS)."""
    if bool(cert_file) != bool(key_file):
        raise ValueError("a client certificate needs its key, and a key its certificate")
    return grpc.ssl_channel_credentials(
        root_certificates=_read(ca_file, "CA") if ca_file else None,
        private_key=_read(key_file, "TLS key") if key_file else None,
        certificate_chain=_read(cert_file, "TLS certificate") if cert_file else None,
    )


def server_name_options(server_name: str) -> list[tuple[str, str]]:
    """Channel options that verify the server's certificate for ``server_name`` instead of the
    address's host: one certificate for several services, or a server reached by IP."""
    return [("grpc.ssl_target_name_override", server_name)] if server_name else []


def aio_channel(
    address: str,
    *,
    ca_file: str = "",
    cert_file: str = "",
    key_file: str = "",
    server_name: str = "",
    options: Sequence[tuple[str, Any]] = (),
    interceptors: Sequence[grpc.aio.ClientInterceptor] | None = None,
) -> grpc.aio.Channel:
    """A channel to ``address``: TLS verified against ``ca_file`` when it is set, plaintext otherwise."""
    if not ca_file:
        if cert_file or key_file or server_name:
            raise ValueError("a client certificate or server name needs a CA (TLS)")
        return grpc.aio.insecure_channel(address, options=list(options), interceptors=interceptors)
    credentials = channel_credentials(ca_file, cert_file, key_file)
    options = [*options, *server_name_options(server_name)]
    return grpc.aio.secure_channel(address, credentials, options=options, interceptors=interceptors)


def is_plaintext(context: grpc.aio.ServicerContext) -> bool:
    return list(context.auth_context().get("transport_security_type", [])) == [b"insecure"]


class PlaintextHealthOnly(grpc.aio.ServerInterceptor):
    """On a server whose port serves TLS, its plaintext health port answers health checks only.

    The kubelet's gRPC probes cannot speak TLS, so a TLS server also binds a
    plaintext port for them; one server serves every method on every port,
    so any other call that arrives in plaintext is refused here.
    """

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(HEALTH_METHOD_PREFIX):
            return handler
        method = handler_call_details.method
        return wrap_handler(handler, lambda request, context: _refuse_plaintext(request, context, method))


async def _refuse_plaintext(request: Any, context: grpc.aio.ServicerContext, method: str) -> Any:
    if is_plaintext(context):
        await context.abort(
            grpc.StatusCode.PERMISSION_DENIED, f"{method}: this plaintext port serves health checks only; use TLS"
        )
    return request
