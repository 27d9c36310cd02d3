"""The LLM tier: the gateway's OpenAI-compatible client against the real embedded
llama.cpp server and Gemma 3 270M."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import httpx2
import openai
import pytest
from llama_cpp.llama_chat_format import Jinja2ChatFormatter
from support import ServiceProcess, free_port

from gateway.config import GatewayConfig
from gateway.llm import ChatClient, LlmSettings, Reply
from gateway.persona import DEFAULT_SYSTEM_PROMPT
from services.llm.models import CHAT_TEMPLATE
from voice_agent.errors import Unavailable

HISTORY = [
    {"role": "system", "content": DEFAULT_SYSTEM_PROMPT},
    {"role": "user", "content": "I have a job interview next week."},
    {"role": "assistant", "content": "Great, let's prepare your answers together."},
    {"role": "user", "content": "What should I say about my weaknesses?"},
]


def client(server: ServiceProcess, **settings: object) -> ChatClient:
    return ChatClient(llm_settings(f"http://{server.address}/v1", **settings))


def llm_settings(base_url: str, **settings: object) -> LlmSettings:
    """The gateway's defaults (GatewayConfig's), pointed at ``base_url``."""
    return dataclasses.replace(GatewayConfig().backends.llm_settings(), base_url=base_url, **settings)  # type: ignore[arg-type]


async def test_a_reply_streams_as_deltas(llm_server: ServiceProcess) -> None:
    chat, reply = client(llm_server), Reply()
    deltas = [delta async for delta in chat.stream(HISTORY, reply)]
    await chat.close()
    assert len(deltas) >= 2 and reply.text.strip()
    assert "\n" not in reply.text and "Client:" not in reply.text  # one line of the dialogue
    assert reply.ttft_ms is not None and reply.tokens == len(deltas)


@pytest.mark.unit
def test_the_chat_template_carries_the_whole_history() -> None:
    prompt = dialogue(HISTORY)
    assert f"The coach's brief: {DEFAULT_SYSTEM_PROMPT}" in prompt
    assert prompt.endswith(
        "Client: I have a job interview next week.\n"
        "Coach: Great, let's prepare your answers together.\n"
        "Client: What should I say about my weaknesses?\n"
        "Coach:"
    )


def dialogue(messages: list[dict[str, str]]) -> str:
    formatter = Jinja2ChatFormatter(CHAT_TEMPLATE.read_text(), eos_token="<eos>", bos_token="<bos>")
    return formatter(messages=messages).prompt


@pytest.mark.unit
@pytest.mark.parametrize("persona", ["You are a helpful coach.", "Head of sales. Be blunt.", ""])
def test_any_persona_is_framed_as_a_dialogue_with_examples(persona: str) -> None:
    """What makes the base model answer: the dialogue, the persona as the coach's brief, example exchanges."""
    prompt = dialogue([{"role": "system", "content": persona}, *HISTORY[1:]])
    assert prompt.startswith("The following is a conversation between a client and their coach.")
    assert (f"The coach's brief: {persona}" in prompt) == bool(persona)
    assert prompt.count("\nClient: ") >= 3 and prompt.count("\nCoach: ") >= 3  # the examples, then the history
    assert prompt.endswith("Client: What should I say about my weaknesses?\nCoach:")


@pytest.mark.unit
def test_a_persona_with_its_own_dialogue_examples_is_used_as_it_is() -> None:
    persona = "You are Alex, an interview coach.\n\nClient: I freeze.\nCoach: Think out loud."
    prompt = dialogue([{"role": "system", "content": persona}, *HISTORY[1:]])
    assert prompt.startswith(persona + "\n\nClient: I have a job interview next week.\n")


async def test_the_server_sees_the_history(llm_server: ServiceProcess) -> None:
    raw = openai.AsyncOpenAI(base_url=f"http://{llm_server.address}/v1", api_key="none")
    short = await raw.chat.completions.create(model="gemma-3-270m", messages=HISTORY[::3], max_tokens=1)
    full = await raw.chat.completions.create(model="gemma-3-270m", messages=HISTORY, max_tokens=1)
    await raw.close()
    assert HISTORY[::3] == [HISTORY[0], HISTORY[-1]]  # the persona and the question, without the two turns between
    assert full.usage.prompt_tokens > short.usage.prompt_tokens + 15  # "Client: I have a job ...", "Coach: Great, ..."


async def test_a_cancelled_reply_frees_the_server(llm_server: ServiceProcess) -> None:
    chat = client(llm_server, max_tokens=300, stop=())
    reply = Reply()
    async for _ in chat.stream(HISTORY, reply):
        break  # closes the HTTP stream: the server stops generating
    assert reply.tokens == 1
    follow_up = Reply()
    assert [delta async for delta in client(llm_server).stream(HISTORY, follow_up)]
    await chat.close()


async def test_an_unreachable_server_is_unavailable() -> None:
    chat = ChatClient(llm_settings(f"http://127.0.0.1:{free_port()}/v1"))
    with pytest.raises(Unavailable, match="unreachable"):
        async for _ in chat.stream(HISTORY, Reply()):
            pass
    await chat.close()


def test_the_embedded_server_yields_the_cores(llm_server: ServiceProcess) -> None:
    """At its default nice 10, on every thread (llama.cpp's, started later, inherit it) and, where Linux
    groups processes by session (autogroup), on its group, without which nice changes nothing between the
    stack's processes, each in a session of its own."""
    tasks = Path(f"/proc/{llm_server.process.pid}/task")
    niceness = {int((task / "stat").read_text().rpartition(")")[2].split()[16]) for task in tasks.iterdir()}
    assert niceness == {10}
    autogroup = Path(f"/proc/{llm_server.process.pid}/autogroup")
    if autogroup.exists():
        assert autogroup.read_text().split()[-1] == "10"


@pytest.mark.unit
async def test_a_conversations_warm_request_goes_after_the_gateways_warm_up() -> None:
    """The server's prefix cache holds one prompt: the last one warmed must be the conversation's, not the
    built-in persona's that the gateway warms at start, retrying until the server is up. Before, a demo
    turn 1 with the caller's memory in its persona waited 600-690 ms for a prefill its warm had done, and
    the gateway's warm-up, retried after it, had undone. (A recording stand-in for the server's client:
    the ordering is the gateway's, no model is involved.)"""
    chat = ChatClient(llm_settings("http://127.0.0.1:9/v1"))
    answered: list[str] = []
    attempts = 0

    async def create(*, messages: list[dict[str, str]], **_: object) -> None:
        nonlocal attempts
        attempts += 1
        if attempts <= 2:  # the server is still loading its model
            raise openai.APIConnectionError(request=httpx2.Request("POST", "http://127.0.0.1:9/v1"))
        answered.append(messages[0]["content"])

    chat._client.chat.completions.create = create  # type: ignore[method-assign]
    warm_up = asyncio.create_task(chat.warm_up(DEFAULT_SYSTEM_PROMPT, interval_s=0.01))
    await asyncio.sleep(0)
    assert await chat.warm([{"role": "system", "content": "You are Ada. Earlier: the client negotiates rent."}])
    assert await warm_up
    assert answered == [DEFAULT_SYSTEM_PROMPT, "You are Ada. Earlier: the client negotiates rent."]
    await chat.close()
