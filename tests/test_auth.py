"""Bearer-token auth on Converse: static API keys and JWTs from a JWKS, checked before any work,
never logged; and the operator CLI's `talk --token`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import jwt
import pytest
from conftest import gateway_args
from cryptography.hazmat.primitives.asymmetric import rsa
from support import ServiceProcess, running, spoken

from gateway.auth import Authenticator, read_api_keys
from voice_agent.audio import write_wav
from voice_agent.client.converse import Conversation
from voice_agent.errors import Unauthenticated

API_KEY = "va-test-key-9f8e7d6c5b4a"
ISSUER, AUDIENCE = "https://auth.example.com/", "voice-agent"


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _jwks(key: rsa.RSAPrivateKey, kid: str = "k1") -> dict:
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {"keys": [{**public, "kid": kid, "alg": "RS256", "use": "sig"}]}


def _token(key: rsa.RSAPrivateKey, kid: str = "k1", **claims: object) -> str:
    payload = {"sub": "coach-app-user-7", "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 300, **claims}
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid})


def _bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


@pytest.mark.unit
def test_the_key_file_ignores_blank_lines_and_comments(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"# mobile app\n{API_KEY}\n\n  second-key  \n")
    assert read_api_keys(path) == [API_KEY, "second-key"]


@pytest.mark.unit
def test_static_keys(signing_key: rsa.RSAPrivateKey) -> None:
    auth = Authenticator([API_KEY])
    caller = auth.authenticate(_bearer(API_KEY))
    assert caller.name.startswith("key:") and API_KEY not in caller.name
    for metadata in ([], [("authorization", API_KEY)], _bearer("wrong"), _bearer(API_KEY + "x")):
        with pytest.raises(Unauthenticated) as refused:
            auth.authenticate(metadata)
        assert API_KEY not in str(refused.value)


@pytest.mark.unit
def test_roles_come_from_the_admin_key_file_or_the_jwt_role_claim(
    signing_key: rsa.RSAPrivateKey, tmp_path: Path
) -> None:
    (tmp_path / "keys").write_text(API_KEY + "\n")
    (tmp_path / "admin").write_text("# operators\nva-admin-key\n")
    (tmp_path / "jwks.json").write_text(json.dumps(_jwks(signing_key)))
    auth = Authenticator.from_files(
        str(tmp_path / "keys"), str(tmp_path / "jwks.json"), admin_api_keys_file=str(tmp_path / "admin"),
        issuer=ISSUER, audience=AUDIENCE, role_claim="roles",
    )  # fmt: skip
    assert auth is not None
    assert auth.authenticate(_bearer(API_KEY)).role == "user"
    admin = auth.authenticate(_bearer("va-admin-key"))
    assert admin.is_operator and admin.name.startswith("key:") and "admin" not in admin.name
    for roles, operator in ((["operator"], True), ("operator", True), (["viewer"], False), (None, False)):
        claims = {"roles": roles} if roles is not None else {}
        assert auth.authenticate(_bearer(_token(signing_key, **claims))).is_operator is operator
    assert not auth.authenticate(_bearer(_token(signing_key, role="operator"))).is_operator  # not the claim set
    (tmp_path / "empty").write_text("# nobody\n")
    with pytest.raises(ValueError, match="no API key"):
        Authenticator.from_files(admin_api_keys_file=str(tmp_path / "empty"))


@pytest.mark.parametrize(
    "case",
    ["valid", "expired", "no expiry", "wrong audience", "wrong issuer", "unknown key", "other signer", "alg none"],
)
@pytest.mark.unit
def test_jwts(signing_key: rsa.RSAPrivateKey, case: str) -> None:
    auth = Authenticator(jwks=_jwks(signing_key), issuer=ISSUER, audience=AUDIENCE)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tokens = {
        "valid": _token(signing_key),
        "expired": _token(signing_key, exp=int(time.time()) - 10),
        "no expiry": jwt.encode({"sub": "x", "iss": ISSUER, "aud": AUDIENCE}, signing_key, "RS256", {"kid": "k1"}),
        "wrong audience": _token(signing_key, aud="someone-else"),
        "wrong issuer": _token(signing_key, iss="https://evil.example.com/"),
        "unknown key": _token(signing_key, kid="k2"),
        "other signer": _token(other),
        "alg none": jwt.encode({"sub": "x", "exp": int(time.time()) + 60}, None, "none", {"kid": "k1"}),
    }
    if case == "valid":
        assert auth.authenticate(_bearer(tokens[case])).name == "jwt:coach-app-user-7"
    else:
        with pytest.raises(Unauthenticated):
            auth.authenticate(_bearer(tokens[case]))


@pytest.fixture(scope="module")
def secured_gateway(
    tmp_path_factory: pytest.TempPathFactory,
    signing_key: rsa.RSAPrivateKey,
    asr_server: ServiceProcess,
    piper_server: ServiceProcess,
    llm_server: ServiceProcess,
) -> Iterator[ServiceProcess]:
    workdir = tmp_path_factory.mktemp("auth")
    (workdir / "keys").write_text(f"# test key\n{API_KEY}\n")
    (workdir / "jwks.json").write_text(json.dumps(_jwks(signing_key)))
    args = gateway_args(asr_server, piper_server, llm_server)
    args += ["--api-keys-file", str(workdir / "keys"), "--jwks-file", str(workdir / "jwks.json")]
    args += ["--jwt-issuer", ISSUER, "--jwt-audience", AUDIENCE, "--log-level", "DEBUG"]
    with running("gateway", workdir / "gateway.log", *args) as gateway:
        yield gateway


async def _typed_turn(address: str, metadata: list[tuple[str, str]]) -> None:
    async with grpc.aio.insecure_channel(address) as channel, Conversation(channel, metadata=metadata) as talk:
        turn = await talk.type("How do I open my talk?")
    assert turn.answer() is not None and not turn.errors


@pytest.mark.parametrize("credential", ["none", "bad key", "expired jwt"])
async def test_converse_without_a_valid_token_is_refused_before_any_work(
    secured_gateway: ServiceProcess, signing_key: rsa.RSAPrivateKey, credential: str
) -> None:
    metadata = {
        "none": [],
        "bad key": _bearer("not-a-key"),
        "expired jwt": _bearer(_token(signing_key, exp=int(time.time()) - 10)),
    }[credential]
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _typed_turn(secured_gateway.address, metadata)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_key_or_a_jwt_opens_a_session_and_neither_is_logged(
    secured_gateway: ServiceProcess, signing_key: rsa.RSAPrivateKey
) -> None:
    token = _token(signing_key)
    await _typed_turn(secured_gateway.address, _bearer(API_KEY))
    await _typed_turn(secured_gateway.address, _bearer(token))
    log = secured_gateway.log.read_text()
    assert "converse from jwt:coach-app-user-7" in log  # the caller is named (DEBUG) ...
    assert API_KEY not in log and token not in log and token.split(".")[2] not in log  # ... its token never


def test_talk_with_a_wrong_token_fails_with_the_status_name(secured_gateway: ServiceProcess, tmp_path: Path) -> None:
    wav = tmp_path / "question.wav"
    write_wav(wav, spoken("Hello coach.").audio)
    command = [str(Path(sys.executable).parent / "voice-agent"), "talk", "--json", "--wav", str(wav)]
    command += ["--out", str(tmp_path / "reply.wav"), "--gateway", secured_gateway.address, "--token", "wrong"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert json.loads(result.stdout)["error"]["code"] == "UNAUTHENTICATED"
    assert "wrong" not in result.stdout
