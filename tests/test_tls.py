"""Transport security with real processes: a gateway that serves TLS itself, a TTS that requires client
certificates (mTLS), the gateway reaching it with its own certificate, and the plaintext health port
that the kubelet's probes use. Certificates are made here, with a throwaway CA."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from conftest import gateway_args
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support import ServiceProcess, free_port, running, spoken

from gateway.config import GatewayConfig
from services.tts.config import TtsConfig
from voice_agent import tls
from voice_agent.audio import write_wav
from voice_agent.client.converse import Conversation, connect
from voice_agent.v1 import tts_pb2, tts_pb2_grpc

# --- a throwaway PKI --------------------------------------------------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _builder(subject: str, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )


@dataclass
class Ca:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def make(cls, name: str) -> Ca:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            _builder(name, _name(name), key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key)

    def issue(self, directory: Path, name: str, *, server: bool) -> tuple[str, str]:
        """A certificate and key for ``name``, written to directory; a server's is valid for localhost
        and 127.0.0.1, a client's for client authentication only."""
        key = ec.generate_private_key(ec.SECP256R1())
        builder = _builder(name, self.cert.subject, key.public_key()).add_extension(
            x509.BasicConstraints(ca=False, path_length=None), critical=True
        )
        if server:
            names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        cert_file, key_file = directory / f"{name}.crt", directory / f"{name}.key"
        cert_file.write_bytes(_pem_cert(builder.sign(self.key, hashes.SHA256())))
        key_file.write_bytes(_pem_key(key))
        return str(cert_file), str(key_file)


@dataclass
class Pki:
    ca_file: str
    server: tuple[str, str]  # certificate, key
    client: tuple[str, str]
    stranger: tuple[str, str]  # a client certificate from another CA

    def credentials(self, client: tuple[str, str] | None = None) -> grpc.ChannelCredentials:
        cert, key = client or ("", "")
        return tls.channel_credentials(self.ca_file, cert, key)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca, other = Ca.make("voice-agent test CA"), Ca.make("someone else's CA")
    (directory / "ca.crt").write_bytes(_pem_cert(ca.cert))
    return Pki(
        ca_file=str(directory / "ca.crt"),
        server=ca.issue(directory, "server", server=True),
        client=ca.issue(directory, "gateway", server=False),
        stranger=other.issue(directory, "stranger", server=False),
    )


# --- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "env",
    [
        {"VOICE_TTS_TLS_CERT_FILE": "server.crt"},  # no key
        {"VOICE_TTS_TLS_KEY_FILE": "server.key"},  # no certificate
        {"VOICE_TTS_TLS_CLIENT_CA_FILE": "ca.crt"},  # mTLS without TLS
        {"VOICE_TTS_HEALTH_PORT": "9000"},  # a health port without TLS: the gRPC port serves health
    ],
)
def test_impossible_tls_settings_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        TtsConfig.from_env(env)


@pytest.mark.parametrize(
    "env",
    [
        {"VOICE_GATEWAY_BACKEND_TLS_CERT_FILE": "gateway.crt", "VOICE_GATEWAY_BACKEND_TLS_CA_FILE": "ca.crt"},
        {"VOICE_GATEWAY_BACKEND_TLS_CERT_FILE": "gateway.crt", "VOICE_GATEWAY_BACKEND_TLS_KEY_FILE": "gateway.key"},
        {"VOICE_GATEWAY_BACKEND_TLS_SERVER_NAME": "tts"},
    ],
)
def test_impossible_backend_tls_settings_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        GatewayConfig.from_env(env)


def test_tls_mode_names_what_the_port_serves() -> None:
    files = {"VOICE_TTS_TLS_CERT_FILE": "s.crt", "VOICE_TTS_TLS_KEY_FILE": "s.key"}
    assert TtsConfig.from_env({}).tls_mode == "plaintext"
    assert TtsConfig.from_env(files).tls_mode == "TLS"
    assert TtsConfig.from_env({**files, "VOICE_TTS_TLS_CLIENT_CA_FILE": "ca.crt"}).tls_mode == "mTLS"


def test_a_credential_file_that_is_no_pem_is_refused_with_its_name(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_text("not a certificate")
    with pytest.raises(ValueError, match=r"ca\.crt"):
        tls.channel_credentials(str(tmp_path / "ca.crt"))
    with pytest.raises(ValueError, match=r"missing\.crt"):
        tls.server_credentials(str(tmp_path / "missing.crt"), str(tmp_path / "missing.key"))


# --- mTLS on a backend ------------------------------------------------------------------------


@dataclass
class MtlsTts:
    process: ServiceProcess
    health_port: int


def _mtls_args(pki: Pki) -> list[str]:
    cert, key = pki.server
    return ["--tls-cert-file", cert, "--tls-key-file", key, "--tls-client-ca-file", pki.ca_file]


@pytest.fixture(scope="module")
def mtls_tts(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[MtlsTts]:
    health_port = free_port()
    args = ["--engine", "piper", *_mtls_args(pki), "--health-port", str(health_port)]
    log = tmp_path_factory.mktemp("mtls-tts") / "tts.log"
    with running("tts", log, *args, credentials=pki.credentials(pki.client)) as server:
        yield MtlsTts(server, health_port)


@pytest.fixture(scope="module")
def mtls_asr(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[ServiceProcess]:
    log = tmp_path_factory.mktemp("mtls-asr") / "asr.log"
    with running("asr", log, *_mtls_args(pki), credentials=pki.credentials(pki.client)) as server:
        yield server


async def _voices(channel: grpc.aio.Channel) -> tts_pb2.ListVoicesResponse:
    return await tts_pb2_grpc.TtsStub(channel).ListVoices(tts_pb2.ListVoicesRequest(), timeout=5)


async def test_mtls_serves_a_client_with_a_certificate_of_its_ca(mtls_tts: MtlsTts, pki: Pki) -> None:
    cert, key = pki.client
    async with tls.aio_channel(mtls_tts.process.address, ca_file=pki.ca_file, cert_file=cert, key_file=key) as channel:
        assert (await _voices(channel)).engine == "piper"
    assert "listening on 127.0.0.1" in mtls_tts.process.log.read_text()
    assert ", mTLS, plaintext health checks on" in mtls_tts.process.log.read_text()


@pytest.mark.parametrize("client", ["plaintext", "no certificate", "another CA's certificate"])
async def test_mtls_refuses_a_client_without_a_certificate_of_its_ca(mtls_tts: MtlsTts, pki: Pki, client: str) -> None:
    address = mtls_tts.process.address
    channel = {
        "plaintext": lambda: grpc.aio.insecure_channel(address),
        "no certificate": lambda: tls.aio_channel(address, ca_file=pki.ca_file),
        "another CA's certificate": lambda: tls.aio_channel(
            address, ca_file=pki.ca_file, cert_file=pki.stranger[0], key_file=pki.stranger[1]
        ),
    }[client]()
    async with channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _voices(channel)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE  # the handshake fails: no call is made


async def test_the_plaintext_health_port_answers_health_checks_only(mtls_tts: MtlsTts) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{mtls_tts.health_port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _voices(channel)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "health checks only" in (refused.value.details() or "")


# --- a gateway serving TLS, reaching its ASR and TTS over mTLS --------------------------------


@pytest.fixture(scope="module")
def tls_gateway(
    tmp_path_factory: pytest.TempPathFactory,
    pki: Pki,
    mtls_asr: ServiceProcess,
    mtls_tts: MtlsTts,
    llm_server: ServiceProcess,
) -> Iterator[ServiceProcess]:
    cert, key = pki.server
    client_cert, client_key = pki.client
    args = gateway_args(mtls_asr, mtls_tts.process, llm_server)
    args += ["--tls-cert-file", cert, "--tls-key-file", key]
    args += ["--backend-tls-ca-file", pki.ca_file, "--backend-tls-cert-file", client_cert]
    # The backends are reached by IP; their certificate is checked for the name it also carries.
    args += ["--backend-tls-key-file", client_key, "--backend-tls-server-name", "localhost"]
    log = tmp_path_factory.mktemp("tls-gateway") / "gateway.log"
    with running("gateway", log, *args, credentials=pki.credentials()) as gateway:
        yield gateway


async def test_a_typed_turn_through_a_tls_gateway_and_mtls_backends(tls_gateway: ServiceProcess, pki: Pki) -> None:
    async with connect(tls_gateway.address, tls_ca=pki.ca_file) as channel, Conversation(channel) as conversation:
        turn = await conversation.type("How do I open my talk?")
    assert turn.answer() is not None and not turn.errors, turn.errors
    assert turn.reply and turn.reply_audio().duration_ms > 0  # the TTS spoke it, over mTLS
    log = tls_gateway.log.read_text()
    assert ", TLS (metrics on" in log and "(mTLS), llm" in log


async def test_a_plaintext_client_cannot_reach_a_tls_gateway(tls_gateway: ServiceProcess) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        async with connect(tls_gateway.address) as channel, Conversation(channel) as conversation:
            await conversation.type("Hello?", max_wait_s=10)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def test_talk_takes_the_ca_from_the_environment(tls_gateway: ServiceProcess, pki: Pki, tmp_path: Path) -> None:
    wav = tmp_path / "question.wav"
    write_wav(wav, spoken("Hello coach.").audio)
    command = [str(Path(sys.executable).parent / "voice-agent"), "talk", "--json", "--wav", str(wav)]
    command += ["--out", str(tmp_path / "reply.wav"), "--gateway", tls_gateway.address]
    environ = {**os.environ, "VOICE_TLS_CA": pki.ca_file}
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=environ)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["reply"]
