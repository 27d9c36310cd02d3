"""``voice-agent conversations``: the conversation records through the gateway's gRPC ``Conversations``
service (list, show, export, delete), and ``migrate``, which applies the record store's migrations
(the Helm chart's hook Job runs it). docs/conversations.md."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.records.access import MAX_PAGE_SIZE, to_json
from voice_agent.client.converse import connect
from voice_agent.v1 import conversations_pb2, conversations_pb2_grpc


def add_commands(parent: argparse._SubParsersAction, command: Callable[..., argparse.ArgumentParser]) -> None:
    """``conversations`` and its subcommands, under the CLI's parser; ``command`` makes a subparser with --json."""
    group = parent.add_parser(
        "conversations", help="past conversations: list, show, export, delete; migrate the record store"
    )
    actions = group.add_subparsers(dest="action", required=True)

    def action(name: str, help_text: str, run: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        sub = command(name, help_text, parent=actions)
        sub.set_defaults(run=run)
        return sub

    listing = action("list", "the conversations you may read, newest first", cmd_list)
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    show = action(
        "show", "one conversation: who, settings, items (role, text, start_ms, end_ms, interrupted)", cmd_show
    )
    export = action(
        "export", "write DIR/conversation.json and DIR/recording.wav (stereo: user left, agent right)", cmd_export
    )
    export.add_argument("--out", required=True, metavar="DIR", help="folder to write into (made if missing)")
    delete = action("delete", "delete a conversation and its recording", cmd_delete)
    for sub in (show, export, delete):
        sub.add_argument("conversation_id", metavar="ID")
    for sub in (listing, show, export, delete):
        _gateway_options(sub)
    migrate = action("migrate", "apply the record store's migrations not yet applied (then exit)", cmd_migrate)
    migrate.add_argument(
        "--url",
        default=os.environ.get("VOICE_GATEWAY_RECORDS_URL", ""),
        help="the record store: sqlite:///PATH or postgresql://... [env VOICE_GATEWAY_RECORDS_URL]",
    )


def _gateway_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--gateway",
        default=os.environ.get("VOICE_GATEWAY_ADDRESS", "127.0.0.1:50051"),
        help="[env VOICE_GATEWAY_ADDRESS]",
    )
    sub.add_argument("--token", default=os.environ.get("VOICE_TOKEN"), help="bearer token [env VOICE_TOKEN]")
    sub.add_argument(
        "--tls-ca",
        metavar="FILE",
        default=os.environ.get("VOICE_TLS_CA"),
        help="TLS to a gateway that serves it, verified against this PEM CA [env VOICE_TLS_CA; default: plaintext]",
    )


async def _call(args: argparse.Namespace, use: Callable[[Any, list[tuple[str, str]]], Any]) -> Any:
    metadata = [("authorization", f"Bearer {args.token}")] if args.token else []
    async with connect(args.gateway, tls_ca=args.tls_ca or "") as channel:
        return await use(conversations_pb2_grpc.ConversationsStub(channel), metadata)


def _print(args: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    print(json.dumps(payload) if args.json else text)


def cmd_list(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise ValueError("--limit must be at least 1")

    async def listing(stub: Any, metadata: list[tuple[str, str]]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        token = ""
        while len(found) < args.limit:
            size = min(args.limit - len(found), MAX_PAGE_SIZE)
            request = conversations_pb2.ListConversationsRequest(page_size=size, page_token=token)
            page = await stub.ListConversations(request, metadata=metadata, timeout=30)
            found += [to_json(c, with_items=False) for c in page.conversations]
            token = page.next_page_token
            if not token:
                break
        return found

    conversations = asyncio.run(_call(args, listing))
    lines = [
        f"{c['conversation_id']}  {c['status']:8}  {c['started_at_ms']}  {c['caller']}"
        + ("  [recording]" if c["has_recording"] else "")
        for c in conversations
    ]
    _print(args, {"conversations": conversations}, "\n".join(lines) or "no conversations")
    return 0


def _get(args: argparse.Namespace) -> dict[str, Any]:
    async def get(stub: Any, metadata: list[tuple[str, str]]) -> conversations_pb2.Conversation:
        request = conversations_pb2.GetConversationRequest(conversation_id=args.conversation_id)
        return await stub.GetConversation(request, metadata=metadata, timeout=30)

    return to_json(asyncio.run(_call(args, get)))


def cmd_show(args: argparse.Namespace) -> int:
    conversation = _get(args)
    lines = [f"{conversation['conversation_id']} ({conversation['status']}, {conversation['caller']})"]
    for item in conversation["items"]:
        cut = " [interrupted: heard " + repr(item["heard_text"]) + "]" if item["interrupted"] else ""
        lines.append(
            f"  [{item['start_ms'] / 1000:7.2f}-{item['end_ms'] / 1000:7.2f}s] {item['role']}: {item['text']}{cut}"
        )
    _print(args, conversation, "\n".join(lines))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    conversation = _get(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "conversation.json").write_text(json.dumps(conversation, indent=2) + "\n")
    payload: dict[str, Any] = {"conversation": str(out / "conversation.json"), "recording": None}
    if conversation["has_recording"]:
        wav = out / "recording.wav"
        payload["recording"] = str(wav)
        payload["recording_bytes"] = asyncio.run(_call(args, lambda stub, md: _download(stub, md, args, wav)))
    text = f"wrote {payload['conversation']}" + (f" and {wav}" if payload["recording"] else " (no recording)")
    _print(args, payload, text)
    return 0


async def _download(stub: Any, metadata: list[tuple[str, str]], args: argparse.Namespace, wav: Path) -> int:
    """Streams the WAV into a temporary file, renamed into place once whole: never a half file."""
    partial = wav.with_suffix(".wav.partial")
    request = conversations_pb2.GetRecordingRequest(conversation_id=args.conversation_id)
    size = 0
    with partial.open("wb") as file:
        async for chunk in stub.GetRecording(request, metadata=metadata, timeout=600):
            file.write(chunk.data)
            size += len(chunk.data)
    partial.replace(wav)
    return size


def cmd_delete(args: argparse.Namespace) -> int:
    async def delete(stub: Any, metadata: list[tuple[str, str]]) -> None:
        request = conversations_pb2.DeleteConversationRequest(conversation_id=args.conversation_id)
        await stub.DeleteConversation(request, metadata=metadata, timeout=30)

    asyncio.run(_call(args, delete))
    _print(args, {"deleted": args.conversation_id}, f"deleted {args.conversation_id}")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from gateway.records.migrate import URL_VARIABLE, migrate
    from gateway.records.store import redacted

    if not args.url:
        raise ValueError(f"name the record store: --url or {URL_VARIABLE}")
    applied = asyncio.run(migrate(args.url))
    payload = {"url": redacted(args.url), "applied": applied}
    _print(args, payload, f"{redacted(args.url)}: applied {applied or 'nothing (up to date)'}")
    return 0
