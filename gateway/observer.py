"""What the gateway's conversations report about themselves: Prometheus metrics and turn traces.

The conversation tells its observer what happened (a turn ended, the user was heard, a backend
failed) and never touches a metric or a span's bookkeeping itself. Each turn is a trace of its own
(``voice.turn``), opened when the user starts speaking and linked to the Converse stream's span.
"""

from __future__ import annotations

import logging

from opentelemetry import context as otel_context
from opentelemetry import trace
from prometheus_client import Counter, Gauge

from gateway.echo.heard import OverEcho
from gateway.preemption import PreemptionOutcome
from gateway.turn import AgentTurn, EmptyRecovery, TurnOutcome
from gateway.turn_taking import Kind
from voice_agent.metrics import COMMON_ERROR_CODES, init_labels, latency_histogram
from voice_agent.telemetry import trace_id_of, tracer, wall_ns

log = logging.getLogger(__name__)

ACTIVE_SESSIONS = Gauge("voice_gateway_active_sessions", "Conversations open now.")
TURNS = Counter(
    "voice_gateway_turns_total",
    "Agent turns, by how they ended: completed, interrupted, failed, cancelled.",
    ["outcome"],
)
INTERRUPTIONS = Counter("voice_gateway_interruptions_total", "Agent turns the user interrupted.")
BACKEND_ERRORS = Counter(
    "voice_gateway_backend_errors_total", "Backend failures seen by sessions.", ["backend", "code"]
)
PREEMPTIONS = Counter(
    "voice_gateway_preemptive_turns_total",
    "Replies started on a pause's transcript, by what became of them: kept (the final matched) or discarded.",
    ["outcome"],
)
DECISIONS = Counter(
    "voice_gateway_interruption_decisions_total",
    "Speech over the agent, by what it was decided to be: interruption, backchannel, noise, echo.",
    ["kind"],
)
FALSE_INTERRUPTIONS_RESUMED = Counter(
    "voice_gateway_false_interruptions_resumed_total",
    "Agent audio held for speech over it that was not an interruption (backchannel, noise, echo), then resumed.",
)
ECHO_REJECTED = Counter(
    "voice_gateway_echo_rejected_total",
    "Transcripts dropped as the agent's own echo: over its speech, or a final just after it.",
)
HEARD_OVER_ECHO = Counter(
    "voice_gateway_speech_over_echo_total",
    "Speech over the agent that read as its echo, heard again with the echo removed, by outcome: no_echo,"
    " echo_only, interruption (the user's words), not_an_interruption, no_words, failed.",
    ["outcome"],
)
DECISION_SECONDS = latency_histogram(
    "voice_gateway_interruption_decision_seconds",
    "Start of speech over the agent to the decision on it, by kind.",
    ("kind",),
)
# Label values come from the enums they name, so that a new kind or outcome is counted (and its series
# created at zero) without a second list to keep in step.
DECISION_KINDS = tuple(kind.value for kind in Kind)
#: What became of speech over the agent heard again with its echo removed; its words are counted as their decision.
OVER_ECHO_OUTCOMES = tuple(outcome.value for outcome in OverEcho if outcome is not OverEcho.WORDS)
EMPTY_REPLIES = Counter(
    "voice_gateway_empty_replies_total",
    "Turns whose LLM reply had nothing to say, by how the turn recovered: retry (asked again with the built-in"
    " persona) or fallback (the fallback line was said).",
    ["recovery"],
)
EMPTY_REPLY_RECOVERIES = tuple(recovery.value for recovery in EmptyRecovery)
LLM_TOKENS = Counter("voice_gateway_llm_tokens_total", "Content tokens streamed from the LLM.")
STAGE_SECONDS = latency_histogram("voice_gateway_stage_seconds", "Stages of completed turns.", ("stage",))
E2E_SECONDS = latency_histogram(
    "voice_gateway_e2e_seconds", "End of the user's speech to the first agent audio sent, at the gateway."
)
STAGES = ("vad_wait", "asr", "llm_ttft", "tts_ttfa", "overhead")
init_labels(TURNS, *((outcome.value,) for outcome in TurnOutcome))
init_labels(PREEMPTIONS, *((outcome.value,) for outcome in PreemptionOutcome))
init_labels(DECISIONS, *((kind,) for kind in DECISION_KINDS))
init_labels(DECISION_SECONDS, *((kind,) for kind in DECISION_KINDS))
init_labels(HEARD_OVER_ECHO, *((outcome,) for outcome in OVER_ECHO_OUTCOMES))
init_labels(EMPTY_REPLIES, *((recovery,) for recovery in EMPTY_REPLY_RECOVERIES))
init_labels(STAGE_SECONDS, *((stage,) for stage in STAGES))
init_labels(BACKEND_ERRORS, *((backend, code) for backend in ("asr", "tts", "llm") for code in COMMON_ERROR_CODES))


class ConversationObserver:
    """One conversation's metrics and turn spans. Created inside the Converse stream's span."""

    def __init__(self, voice: str, llm_model: str) -> None:
        self._attributes = {"tts.voice": voice, "llm.model": llm_model}
        self._session_span = trace.get_current_span().get_span_context()
        self._user_span: trace.Span | None = None  # the turn the user is speaking, opened at speech start

    # ---- the conversation

    def opened(self) -> None:
        ACTIVE_SESSIONS.inc()

    def closed(self) -> None:
        self.abandon_user_turn()
        ACTIVE_SESSIONS.dec()

    # ---- turn spans

    def user_started(self, started_at: float) -> trace.Span:
        """The user began to speak: the trace of the turn this may become."""
        self.abandon_user_turn()  # an utterance that never got its final (the ASR reconnected)
        self._user_span = self.open_turn_span(started_at)
        return self._user_span

    def user_span(self, now: float) -> trace.Span:
        """The span of the user's turn in progress; opened now if the ASR reconnected mid-utterance."""
        if self._user_span is None:
            self._user_span = self.open_turn_span(now)
        return self._user_span

    def take_user_span(self) -> trace.Span | None:
        """The user's turn has its final transcript: its span goes to the agent turn it starts."""
        span, self._user_span = self._user_span, None
        return span

    def abandon_user_turn(self) -> None:
        span, self._user_span = self._user_span, None
        if span is not None:
            span.set_attribute("turn.outcome", "abandoned")
            span.end()

    def open_turn_span(self, started_at: float) -> trace.Span:
        links = [trace.Link(self._session_span)] if self._session_span.is_valid else None
        return tracer.start_span(
            "voice.turn",
            otel_context.Context(),  # a new trace: a conversation can last far longer than a trace view
            links=links,
            start_time=wall_ns(started_at),
            attributes=self._attributes,
        )

    # ---- outcomes

    def no_speech(self, span: trace.Span | None, outcome: str) -> None:
        """The user's turn ends without an agent turn: no words (no_speech), or the client asks for the
        reply later (no_reply)."""
        if span is not None:
            span.set_attribute("turn.outcome", outcome)
            span.end()

    def turn_ended(self, turn: AgentTurn, outcome: TurnOutcome) -> None:
        TURNS.labels(outcome.value).inc()
        LLM_TOKENS.inc(turn.reply.tokens)
        if turn.empty_recovery is not None:
            EMPTY_REPLIES.labels(turn.empty_recovery.value).inc()
        if outcome is TurnOutcome.INTERRUPTED:
            INTERRUPTIONS.inc()
        if outcome is TurnOutcome.COMPLETED:
            self._observe_stages(turn)

    def interruption_decided(self, kind: Kind, decision_ms: float, *, resumed: bool) -> None:
        """Speech over the agent was decided; ``resumed``: its held audio went on."""
        DECISIONS.labels(kind.value).inc()
        DECISION_SECONDS.labels(kind.value).observe(max(decision_ms, 0.0) / 1000)
        if resumed:
            FALSE_INTERRUPTIONS_RESUMED.inc()
        if kind is Kind.ECHO:
            ECHO_REJECTED.inc()

    def heard_over_echo(self, outcome: OverEcho) -> None:
        """Speech over the agent that read as its echo was heard again with the echo removed."""
        HEARD_OVER_ECHO.labels(outcome.value).inc()

    def echo_rejected(self) -> None:
        """A final transcript just after the agent's audio repeated it: dropped, not answered."""
        ECHO_REJECTED.inc()

    def preemption(self, outcome: PreemptionOutcome) -> None:
        PREEMPTIONS.labels(outcome.value).inc()

    def backend_failed(self, backend: str, code: str, message: str) -> None:
        BACKEND_ERRORS.labels(backend, code).inc()
        log.warning("session: %s failed (%s): %s", backend, code, message)

    @staticmethod
    def _observe_stages(turn: AgentTurn) -> None:
        """A completed turn's stages into the histograms; the end-to-end one links to its trace."""
        stages = turn.stage_ms()
        for stage in STAGES:
            value = stages[f"{stage}_ms"]
            if value > 0 or (stage == "overhead" and stages["e2e_ms"] > 0):
                STAGE_SECONDS.labels(stage).observe(max(value, 0.0) / 1000)
        if stages["e2e_ms"] > 0:
            trace_id = trace_id_of(turn.span)
            E2E_SECONDS.observe(stages["e2e_ms"] / 1000, exemplar={"trace_id": trace_id} if trace_id else None)
