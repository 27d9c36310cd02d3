"""Who reads and deletes which conversation, over gRPC, HTTP and the CLI, against a real gateway with auth
on, its records in PostgreSQL 15 and its recordings on S3 (moto's server). The records are written by the
test through the same stores; the gateway only serves them (the Conversations API needs no ASR, TTS or LLM).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import grpc
import jwt
import numpy as np
import pytest
import soundfile
from cryptography.hazmat.primitives.asymmetric import rsa
from store_servers import MotoS3, Postgres, create_bucket, moto_s3_server, postgres_server
from support import ServiceProcess, free_port, running
from yarl import URL

from gateway.records.ids import new_conversation_id
from gateway.records.model import RECORDING_FRAME_BYTES, RECORDING_SAMPLE_RATE_HZ, Header, Item, Role, Status
from gateway.records.recordings import SEGMENT_BYTES
from gateway.records.store import open_record_store, open_recording_store
from voice_agent.v1 import conversations_pb2, conversations_pb2_grpc
from voice_ops.stack import gateway_backend_args

ALICE, BOB, ADMIN = "va-alice-key-1a2b3c", "va-bob-key-4d5e6f", "va-admin-key-7a8b9c"
BUCKET = "voice-recordings"
SEGMENT_FRAMES = SEGMENT_BYTES // RECORDING_FRAME_BYTES


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwt_for(key: rsa.RSAPrivateKey, subject: str, **claims: object) -> str:
    payload = {"sub": subject, "exp": int(time.time()) + 300, **claims}
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": "k1"})


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[Postgres, MotoS3]]:
    with postgres_server() as postgres, moto_s3_server() as s3:
        create_bucket(s3, BUCKET)
        yield postgres, s3


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, servers: tuple[Postgres, MotoS3], signing_key: rsa.RSAPrivateKey
) -> Iterator[ServiceProcess]:
    postgres, s3 = servers
    folder = tmp_path_factory.mktemp("records-gateway")
    (folder / "keys").write_text(f"{ALICE}\n{BOB}\n")
    (folder / "admin-keys").write_text(f"# operators\n{ADMIN}\n")
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(signing_key.public_key()))
    (folder / "jwks.json").write_text(json.dumps({"keys": [{**public, "kid": "k1", "alg": "RS256"}]}))
    nowhere = f"127.0.0.1:{free_port()}"  # no ASR, TTS or LLM: this API needs none
    args = [
        *gateway_backend_args(nowhere, nowhere, nowhere),
        *("--api-keys-file", str(folder / "keys"), "--admin-api-keys-file", str(folder / "admin-keys")),
        *("--jwks-file", str(folder / "jwks.json")),
        *("--records-url", postgres.url(), "--recordings-url", f"s3://{BUCKET}/recordings"),
    ]
    saved = dict(os.environ)
    os.environ.update(s3.env)  # the gateway's S3 endpoint and credentials, as AWS's variables give them
    try:
        with running("gateway", folder / "gateway.log", *args) as server:
            wait_for_the_records(server)
            yield server
    finally:
        os.environ.clear()
        os.environ.update(saved)


def wait_for_the_records(gateway: ServiceProcess, timeout_s: float = 30.0) -> None:
    """The gateway serves at once and opens its stores in the background (UNAVAILABLE until then)."""
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(gateway.address) as channel:
        stub = conversations_pb2_grpc.ConversationsStub(channel)
        while True:
            try:
                stub.ListConversations(conversations_pb2.ListConversationsRequest(), metadata=bearer(ADMIN))
                return
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                    raise
            time.sleep(0.1)


def key_name(key: str) -> str:
    from gateway.auth import Authenticator

    return Authenticator([key]).authenticate([("authorization", f"Bearer {key}")]).name


@pytest.fixture(scope="module")
async def seeded(gateway: ServiceProcess, servers: tuple[Postgres, MotoS3]) -> AsyncIterator[dict[str, str]]:
    """Conversations of alice (one recorded), of bob, and of a JWT user: their ids by name."""
    postgres, s3 = servers
    records = open_record_store(postgres.url())
    await records.open()
    saved = dict(os.environ)
    os.environ.update(s3.env)
    recordings = open_recording_store(f"s3://{BUCKET}/recordings")
    await recordings.open()
    ids = {name: new_conversation_id() for name in ("alice", "alice2", "bob", "carol")}
    callers = {"alice": key_name(ALICE), "alice2": key_name(ALICE), "bob": key_name(BOB), "carol": "jwt:carol"}
    for n, (name, cid) in enumerate(ids.items()):
        await records.start(Header(cid, callers[name], "coach", {"voice": "af_heart"}, 1_000_000 + n))
        await records.add_items(cid, [Item("u1", Role.USER, f"hello from {name}", 200, 900)])
    agent = Item("a1", Role.AGENT, "Tell me about a project you led.", 1000, 2500, 1, True, "Tell me about")
    await records.add_items(ids["alice"], [agent])
    await records.update(ids["alice"], status=Status.ENDED, ended_at_ms=1_010_000, recording_key=ids["alice"])
    user = np.zeros((RECORDING_SAMPLE_RATE_HZ, 2), np.int16)
    user[: RECORDING_SAMPLE_RATE_HZ // 2, 0] = 3000  # the user speaks for the first half second, left
    await recordings.put_segment(ids["alice"], 0, user.tobytes())  # 1 s of segment 0's window: the rest silence
    agent = np.full((SEGMENT_FRAMES, 2), [0, -3000], np.int16)  # the agent, right, through segment 1's window
    await recordings.put_segment(ids["alice"], 1, agent.tobytes())
    try:
        yield ids
    finally:
        await recordings.close()
        await records.close()
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture
async def stub(gateway: ServiceProcess) -> AsyncIterator[conversations_pb2_grpc.ConversationsStub]:
    async with grpc.aio.insecure_channel(gateway.address) as channel:
        yield conversations_pb2_grpc.ConversationsStub(channel)


def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


async def listed(stub: conversations_pb2_grpc.ConversationsStub, token: str) -> set[str]:
    reply = await stub.ListConversations(conversations_pb2.ListConversationsRequest(), metadata=bearer(token))
    return {c.conversation_id for c in reply.conversations}


async def status_of(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call  # type: ignore[misc]
    return refused.value.code()


async def test_grpc_a_caller_sees_its_own_and_an_operator_all(
    stub: conversations_pb2_grpc.ConversationsStub, seeded: dict[str, str], signing_key: rsa.RSAPrivateKey
) -> None:
    assert await listed(stub, ALICE) == {seeded["alice"], seeded["alice2"]}
    assert await listed(stub, BOB) == {seeded["bob"]}
    assert await listed(stub, jwt_for(signing_key, "carol")) == {seeded["carol"]}
    assert await listed(stub, ADMIN) == set(seeded.values())
    assert await listed(stub, jwt_for(signing_key, "ops-1", role="operator")) == set(seeded.values())
    assert await listed(stub, jwt_for(signing_key, "ops-2", role=["viewer", "operator"])) == set(seeded.values())

    got = await stub.GetConversation(
        conversations_pb2.GetConversationRequest(conversation_id=seeded["alice"]), metadata=bearer(ALICE)
    )
    assert [(i.role, i.text, i.start_ms, i.interrupted) for i in got.items] == [
        ("user", "hello from alice", 200, False),
        ("agent", "Tell me about a project you led.", 1000, True),
    ]
    assert got.items[1].heard_text == "Tell me about" and got.has_recording and got.status == "ended"


async def test_grpc_pages_are_bounded_and_tokens_carry_on(
    stub: conversations_pb2_grpc.ConversationsStub, seeded: dict[str, str]
) -> None:
    first = await stub.ListConversations(
        conversations_pb2.ListConversationsRequest(page_size=3), metadata=bearer(ADMIN)
    )
    rest = await stub.ListConversations(
        conversations_pb2.ListConversationsRequest(page_size=3, page_token=first.next_page_token),
        metadata=bearer(ADMIN),
    )
    assert len(first.conversations) == 3 and first.next_page_token
    ids = [c.conversation_id for c in [*first.conversations, *rest.conversations]]
    assert ids[0] == seeded["carol"] and sorted(ids) == sorted(seeded.values())  # newest first, each once
    assert not rest.next_page_token and not first.conversations[0].items  # a list has no items


async def test_grpc_others_ids_bad_ids_and_bad_requests(
    stub: conversations_pb2_grpc.ConversationsStub, seeded: dict[str, str]
) -> None:
    def get(cid: str, token: str = BOB) -> object:
        return stub.GetConversation(
            conversations_pb2.GetConversationRequest(conversation_id=cid), metadata=bearer(token)
        )

    assert await status_of(get(seeded["alice"])) == grpc.StatusCode.NOT_FOUND  # alice's, asked by bob
    assert await status_of(get(new_conversation_id())) == grpc.StatusCode.NOT_FOUND  # nobody's: the same answer
    for bad in ("../../etc/passwd", "conv_../x", "", "x" * 5000, "conv_" + "A" * 24, "conv_%2e%2e"):
        assert await status_of(get(bad)) == grpc.StatusCode.INVALID_ARGUMENT
    recording = stub.GetRecording(
        conversations_pb2.GetRecordingRequest(conversation_id=seeded["alice"]), metadata=bearer(BOB)
    )
    assert await status_of(recording.read()) == grpc.StatusCode.NOT_FOUND
    delete = conversations_pb2.DeleteConversationRequest(conversation_id=seeded["alice"])
    assert await status_of(stub.DeleteConversation(delete, metadata=bearer(BOB))) == grpc.StatusCode.NOT_FOUND
    huge = conversations_pb2.ListConversationsRequest(page_size=100_000)
    assert await status_of(stub.ListConversations(huge, metadata=bearer(ALICE))) == grpc.StatusCode.INVALID_ARGUMENT
    forged = conversations_pb2.ListConversationsRequest(page_token="1.conv_'; DROP TABLE items;--")
    assert await status_of(stub.ListConversations(forged, metadata=bearer(ALICE))) == grpc.StatusCode.INVALID_ARGUMENT
    anonymous = stub.ListConversations(conversations_pb2.ListConversationsRequest())
    assert await status_of(anonymous) == grpc.StatusCode.UNAUTHENTICATED
    wrong = stub.ListConversations(conversations_pb2.ListConversationsRequest(), metadata=bearer("nope"))
    assert await status_of(wrong) == grpc.StatusCode.UNAUTHENTICATED


async def test_grpc_the_recording_streams_as_a_stereo_wav(
    stub: conversations_pb2_grpc.ConversationsStub, seeded: dict[str, str]
) -> None:
    request = conversations_pb2.GetRecordingRequest(conversation_id=seeded["alice"])
    wav = b"".join([chunk.data async for chunk in stub.GetRecording(request, metadata=bearer(ALICE))])
    audio, rate = soundfile.read(io.BytesIO(wav), dtype="int16")
    assert rate == RECORDING_SAMPLE_RATE_HZ and audio.shape == (2 * SEGMENT_FRAMES, 2)
    assert (audio[: rate // 2, 0] == 3000).all() and (audio[rate // 2 :, 0] == 0).all()
    assert (audio[SEGMENT_FRAMES:, 1] == -3000).all() and (audio[:SEGMENT_FRAMES, 1] == 0).all()
    none = conversations_pb2.GetRecordingRequest(conversation_id=seeded["bob"])  # bob's has no recording
    assert await status_of(stub.GetRecording(none, metadata=bearer(BOB)).read()) == grpc.StatusCode.NOT_FOUND


# ---- HTTP


@pytest.fixture
async def http(gateway: ServiceProcess) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    assert gateway.settings is not None
    async with aiohttp.ClientSession() as session:
        yield session, f"http://127.0.0.1:{gateway.settings.http_port}/v1/conversations"  # type: ignore[attr-defined]


def auth_header(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_http_reads_as_grpc_does(http: tuple[aiohttp.ClientSession, str], seeded: dict[str, str]) -> None:
    session, base = http
    async with session.get(base, headers=auth_header(ALICE)) as response:
        assert response.status == 200
        body = await response.json()
    assert {c["conversation_id"] for c in body["conversations"]} == {seeded["alice"], seeded["alice2"]}
    async with session.get(f"{base}/{seeded['alice']}", headers=auth_header(ALICE)) as response:
        conversation = await response.json()
    assert [(i["role"], i["start_ms"], i["end_ms"], i["interrupted"]) for i in conversation["items"]] == [
        ("user", 200, 900, False),
        ("agent", 1000, 2500, True),
    ]
    assert conversation["settings"] == {"voice": "af_heart"}
    async with session.get(f"{base}/{seeded['alice']}/recording.wav", headers=auth_header(ADMIN)) as response:
        assert response.status == 200 and response.content_type == "audio/wav"
        wav = await response.read()
        assert response.content_length == len(wav)
    assert soundfile.info(io.BytesIO(wav)).channels == 2


async def test_http_errors_are_clear_and_leak_nothing(
    http: tuple[aiohttp.ClientSession, str], seeded: dict[str, str]
) -> None:
    session, base = http
    cases = [
        (f"{base}/{seeded['alice']}", BOB, 404, "NOT_FOUND"),
        (f"{base}/{new_conversation_id()}", BOB, 404, "NOT_FOUND"),
        (f"{base}/{seeded['alice']}/recording.wav", BOB, 404, "NOT_FOUND"),
        (f"{base}/conv_..%2F..%2Fetc", ALICE, 400, "INVALID_ARGUMENT"),
        (f"{base}/%2E%2E", ALICE, 400, "INVALID_ARGUMENT"),
        (f"{base}?page_size=100000", ALICE, 400, "INVALID_ARGUMENT"),
        (f"{base}?page_size=-1", ALICE, 400, "INVALID_ARGUMENT"),
        (f"{base}?page_size=ten", ALICE, 400, "INVALID_ARGUMENT"),
        (f"{base}?page_token=garbage", ALICE, 400, "INVALID_ARGUMENT"),
        (base, "not-a-key", 401, "UNAUTHENTICATED"),
    ]
    for url, token, status, code in cases:
        async with session.get(URL(url, encoded=True), headers=auth_header(token)) as response:  # sent as written
            body = await response.json()
            assert (response.status, body["error"]["code"]) == (status, code), (url, body)
    async with session.get(base) as response:
        assert response.status == 401 and response.headers["WWW-Authenticate"] == "Bearer"
    async with session.get(base.removesuffix("/v1/conversations") + "/v1/conversations/../../etc/passwd") as response:
        assert response.status in (401, 404)  # normalized away from the API, or refused: never a file


# ---- the CLI, then deletes (last: they change the store)


def cli(*args: str, token: str, gateway: ServiceProcess) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VOICE_TOKEN": token, "VOICE_GATEWAY_ADDRESS": gateway.address}
    command = [sys.executable, "-m", "voice_ops.cli", "conversations", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)


def test_the_cli_lists_shows_exports_and_deletes(
    gateway: ServiceProcess, seeded: dict[str, str], tmp_path: Path
) -> None:
    listing = json.loads(cli("list", "--json", token=BOB, gateway=gateway).stdout)
    assert [c["conversation_id"] for c in listing["conversations"]] == [seeded["bob"]]
    shown = json.loads(cli("show", seeded["bob"], "--json", token=BOB, gateway=gateway).stdout)
    assert [(i["role"], i["text"], i["start_ms"], i["end_ms"], i["interrupted"]) for i in shown["items"]] == [
        ("user", "hello from bob", 200, 900, False)
    ]
    exported = json.loads(
        cli("export", seeded["bob"], "--out", str(tmp_path), "--json", token=BOB, gateway=gateway).stdout
    )
    assert json.loads((tmp_path / "conversation.json").read_text())["conversation_id"] == seeded["bob"]
    assert exported["recording"] is None  # bob's conversation was not recorded
    alice = tmp_path / "alice"
    cli("export", seeded["alice"], "--out", str(alice), token=ALICE, gateway=gateway).check_returncode()
    assert soundfile.info(alice / "recording.wav").channels == 2
    assert len(json.loads((alice / "conversation.json").read_text())["items"]) == 2
    refused = cli("show", seeded["bob"], "--json", token=ALICE, gateway=gateway)
    assert refused.returncode == 1 and json.loads(refused.stdout)["error"]["code"] == "NOT_FOUND"
    assert cli("delete", seeded["bob"], token=BOB, gateway=gateway).returncode == 0
    assert json.loads(cli("list", "--json", token=BOB, gateway=gateway).stdout) == {"conversations": []}


async def test_deleting_deletes_the_recording_too(
    http: tuple[aiohttp.ClientSession, str], seeded: dict[str, str], servers: tuple[Postgres, MotoS3]
) -> None:
    session, base = http
    cid = seeded["alice"]
    async with session.delete(f"{base}/{cid}", headers=auth_header(BOB)) as response:
        assert response.status == 404
    async with session.delete(f"{base}/{cid}", headers=auth_header(ALICE)) as response:
        assert response.status == 204
    async with session.get(f"{base}/{cid}", headers=auth_header(ADMIN)) as response:
        assert response.status == 404
    async with session.delete(f"{base}/{cid}", headers=auth_header(ALICE)) as response:
        assert response.status == 404
    recordings = open_recording_store(f"s3://{BUCKET}/recordings?endpoint={servers[1].endpoint}")
    await recordings.open()
    try:
        assert await recordings.list_segments(cid) == []
    finally:
        await recordings.close()


async def test_a_store_that_is_down_is_unavailable_not_an_error(
    stub: conversations_pb2_grpc.ConversationsStub,
    http: tuple[aiohttp.ClientSession, str],
    servers: tuple[Postgres, MotoS3],
) -> None:
    """Last: it stops the module's PostgreSQL. Clients are told to retry; the gateway goes on serving."""
    servers[0].stop()
    listing = stub.ListConversations(conversations_pb2.ListConversationsRequest(), metadata=bearer(ALICE))
    assert await status_of(listing) == grpc.StatusCode.UNAVAILABLE
    session, base = http
    async with session.get(base, headers=auth_header(ALICE)) as response:
        assert response.status == 503 and (await response.json())["error"]["code"] == "UNAVAILABLE"
    async with session.get(base.removesuffix("/v1/conversations") + "/healthz") as response:
        assert response.status == 200
