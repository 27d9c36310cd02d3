"""The LLM tier as the gateway sees it: any OpenAI-compatible ``/v1/chat/completions``
server, streamed through the official ``openai`` client.

One client (one pooled HTTP connection set) per gateway process. Cancelling a
reply closes its HTTP stream, which makes vLLM and llama.cpp abort the
generation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import openai
from openai import AsyncOpenAI
from opentelemetry import trace

from voice_agent.errors import DeadlineExceeded, ServiceError, Unavailable
from voice_agent.telemetry import trace_headers, tracer


@dataclass(frozen=True)
class LlmSettings:
    """What the client needs of the llm_* settings (GatewayConfig.backends), which hold the defaults and their help."""

    base_url: str
    model: str
    api_key: str
    max_tokens: int
    temperature: float
    stop: tuple[str, ...]
    request_timeout_s: float


@dataclass
class Reply:
    """What a streamed reply produced, and when."""

    text: str = ""
    tokens: int = 0
    ttft_ms: float | None = None
    started: float = field(default_factory=time.perf_counter)


class LlmError(ServiceError):
    """The LLM server failed or answered with an error."""


class ChatClient:
    def __init__(self, settings: LlmSettings) -> None:
        self.settings = settings
        self._client = AsyncOpenAI(
            base_url=settings.base_url,
            api_key=settings.api_key,
            timeout=settings.request_timeout_s,
            max_retries=0,  # a voice turn cannot wait for retries; the caller decides
        )
        # Set while no warm_up runs: a conversation's warm waits for the gateway's, or the warm-up's
        # retry would land last and the server's one cached prompt would be the built-in persona again.
        self._warmed_up = asyncio.Event()
        self._warmed_up.set()

    async def stream(self, messages: list[dict[str, str]], reply: Reply) -> AsyncIterator[str]:
        """Yields content deltas as they arrive, filling in ``reply`` on the way."""
        # Not made current: a context set inside an async generator would leak into the caller between yields.
        span = tracer.start_span("llm.chat", kind=trace.SpanKind.CLIENT, attributes=self._span_attributes(messages))
        try:
            async for delta in self._stream(messages, reply, span):
                yield delta
        except ServiceError as error:
            span.set_status(trace.Status(trace.StatusCode.ERROR, str(error)))
            raise
        finally:
            span.set_attributes({"llm_ttft_ms": reply.ttft_ms or 0.0, "gen_ai.usage.output_tokens": reply.tokens})
            span.end()

    def _span_attributes(self, messages: list[dict[str, str]]) -> dict[str, str | int | float]:
        return {
            "gen_ai.system": "openai",
            "gen_ai.request.model": self.settings.model,
            "gen_ai.request.max_tokens": self.settings.max_tokens,
            "gen_ai.request.temperature": self.settings.temperature,
            "llm.messages": len(messages),
            "server.address": self.settings.base_url,
        }

    async def _open(self, messages: list[dict[str, str]], span: trace.Span) -> openai.AsyncStream[Any]:
        request = {
            "model": self.settings.model,
            "messages": messages,
            "max_tokens": self.settings.max_tokens,
            "temperature": self.settings.temperature,
            "stop": list(self.settings.stop) or None,
            "stream": True,
            "extra_headers": trace_headers(span),  # vLLM (--otlp-traces-endpoint) continues the trace
        }
        try:
            try:
                return await self._client.chat.completions.create(**request)
            except openai.APITimeoutError:
                raise
            except openai.APIConnectionError:
                # Once: a pooled keep-alive connection the server has closed fails at first use.
                return await self._client.chat.completions.create(**request)
        except openai.APITimeoutError as error:
            raise DeadlineExceeded(
                f"the LLM server at {self.settings.base_url} did not answer within {self.settings.request_timeout_s} s"
            ) from error
        except openai.APIConnectionError as error:
            raise Unavailable(f"the LLM server at {self.settings.base_url} is unreachable: {error}") from error
        except openai.APIStatusError as error:
            raise LlmError(f"the LLM server answered {error.status_code}: {error.message}") from error

    async def _stream(self, messages: list[dict[str, str]], reply: Reply, span: trace.Span) -> AsyncIterator[str]:
        stream = await self._open(messages, span)
        chunks = aiter(stream)
        finished = False
        try:
            while True:
                # Our own deadline per token: a server that hangs mid-reply fails the turn, whatever
                # the HTTP transport's timeouts are.
                async with asyncio.timeout(self.settings.request_timeout_s):
                    chunk = await anext(chunks, None)
                if chunk is None:
                    if not finished:  # llama.cpp ends the stream like this when the prompt overflows its context
                        raise LlmError("the LLM stream ended without finishing its reply (is the prompt too long?)")
                    return
                finished = finished or any(choice.finish_reason for choice in chunk.choices)
                delta = chunk.choices[0].delta.content if chunk.choices else None
                if not delta:
                    continue
                if reply.ttft_ms is None:
                    reply.ttft_ms = (time.perf_counter() - reply.started) * 1000
                reply.text += delta
                reply.tokens += 1
                yield delta
        except LlmError:
            raise
        except TimeoutError as error:
            stalled = f"the LLM stream stalled: no token for {self.settings.request_timeout_s} s"
            raise DeadlineExceeded(stalled) from error
        except openai.APIError as error:
            raise LlmError(f"the LLM stream failed: {error}") from error
        except Exception as error:  # the transport's errors (httpx's, OSError): the server went away mid-reply
            raise Unavailable(f"the LLM stream broke off: {type(error).__name__}: {error}") from error
        finally:
            await stream.close()  # on cancel too: the server stops generating

    async def warm_up(self, system_prompt: str, attempts: int = 240, interval_s: float = 0.25) -> bool:
        """Asks for one token after the system prompt, so that the server's prefix cache
        holds it before the first user turn. Best effort: retries while the server starts, often
        enough to be done before a first turn that comes as soon as the server is up (every 2 s, the
        first `voice-agent talk` after `voice-agent up` met a cold prefix: 1.2 s to the first token)."""
        self._warmed_up.clear()
        try:
            for _ in range(attempts):
                if await self._one_token([{"role": "system", "content": system_prompt}]):
                    return True
                await asyncio.sleep(interval_s)
            return False
        finally:
            self._warmed_up.set()

    async def warm(self, prefix: list[dict[str, str]]) -> bool:
        """Asks for one token after ``prefix`` (a conversation's system prompt and history), so that the
        server's prefix cache holds it before the turn that needs it, once the gateway's warm-up is done;
        True if the server answered."""
        await self._warmed_up.wait()
        return await self._one_token(prefix)

    async def _one_token(self, prefix: list[dict[str, str]]) -> bool:
        messages = [*prefix, {"role": "user", "content": "Hello."}]
        try:
            await self._client.chat.completions.create(
                model=self.settings.model,
                messages=messages,  # type: ignore[arg-type]
                max_tokens=1,
            )
        except openai.APIError:
            return False
        return True

    async def close(self) -> None:
        await self._client.close()
