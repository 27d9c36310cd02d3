"""The latency techniques, each off, each alone and all on, side by side in one run (`make bench-latency`).

One embedded stack on free ports (ASR, TTS: --tts-engine, the TTS service's default; llama.cpp + Gemma 3 270M;
one gateway, --latency-mode fast, --llm-max-tokens 16), and one Converse session per configuration,
all open at once. Each configuration is its session's LatencyOptions, so nothing restarts between them:

- all_off: every technique off, end of turn after 200 ms of silence (the gateway's baseline mode);
- one per technique, that one alone: preemptive_generation, reuse_pause_transcript, short_first_phrase,
  warm_paths (200 ms), and adaptive_endpointing (150 ms: the shorter wait is what it makes safe);
- all_on: every technique, 150 ms (the gateway's fast mode).

The configurations take turns in blocks: one uncounted turn (a paused utterance of the pause set), then
--block (3) counted questions, then the next configuration; the order rotates each round, so that the
machine's noise falls on all alike. Blocks, not single turns, because the embedded llama.cpp server
keeps one prompt in its cache (the last one): a session whose turn follows another session's would find
its own prefix evicted, every turn, which no conversation alone on the stack sees and which vLLM's
prefix cache (production) does not do either. The uncounted turn refills the cache with this session's
prompt. ``--block 1 --no-warmup`` takes turns question by question instead.

Every configuration asks the same --turns (6) spoken questions (espeak-ng, real-time microphone pace),
in its own order. Per configuration: e2e_ms p50/p95 (client-measured, TurnResult.metrics), the p50 of
each stage (vad_wait, asr, llm_ttft, tts_ttfa, overhead), the turns answered by a preemptive reply
(TurnMetrics.preemptive) and, from the gateway's Prometheus counter
voice_gateway_preemptive_turns_total{outcome}, the speculations kept and discarded (the keep rate).

False ends of turn (docs/performance/end-of-turn.md): the pause set (voice_ops.samples.PAUSE_SET: sentences with a
300 ms silence in the middle, after a word that cannot end them) straight into the ASR, with the
RecognitionConfig the gateway sends for all_off, adaptive_endpointing and all_on; a false end of turn is a
second SpeechEnded for one utterance, or one that puts the speech's end before the utterance's last part.
The uncounted turns are the same utterances through the gateway, in every configuration: there, agent text
or audio before the client sent the utterance's last speech sample is a false end of turn too.

Last, the first-phrase sweep: time to first audio from the TTS alone for first_phrase_words 2, 3, 4, 6
and a whole first clause (50), with the playback stall that follows a short first phrase.

A turn lasts until its reply's audio has played, so the reply length (--llm-max-tokens) sets the run's
length; the time to first audio does not depend on it, except where the first phrase is the whole first
clause (short_first_phrase off) and the reply stops before that clause ends: such turns are counted
(first_phrase_cut_by_max_tokens).

Writes benchmarks/results/latency.json and latency.png, and prints the side-by-side table and the
target checks (printed, not asserted). A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import grpc
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.common import (
    BREAKDOWN,
    QUESTIONS,
    STAGE_COLOURS,
    CpuMeter,
    add_stack_arguments,
    arg_parser,
    natural_speech,
    plot_path,
    progress,
    pyplot,
    results_path,
    save_figure,
    settle,
    spoken,
    stack_from_args,
)
from benchmarks.stats import run_info, summary, write_results
from gateway.config import GatewayConfig
from gateway.latency import LONG_FIRST_PHRASE_WORDS, MODE_SILENCE_MS, LatencyPlan
from gateway.session_settings import latency_choices
from services.tts.config import ENGINES
from voice_agent.audio import ASR_SAMPLE_RATE, Pcm16Audio
from voice_agent.client.asr import recognize
from voice_agent.client.converse import Conversation, TurnResult
from voice_agent.client.tts import Synthesis, synthesize
from voice_agent.v1 import gateway_pb2
from voice_ops.demo import DESIGN_TARGET_MS, DESIGN_TODAY_MS
from voice_ops.samples import (
    COMPLETE_QUESTIONS,
    PAUSE_SET,
    PausedSample,
    SpokenSample,
    recorded_turns,
    speak,
    speak_with_pauses,
    word_error_rate,
)

TECHNIQUES = (
    "preemptive_generation",
    "reuse_pause_transcript",
    "short_first_phrase",
    "warm_paths",
    "adaptive_endpointing",
)
BASELINE_SILENCE_MS = MODE_SILENCE_MS["baseline"]  # the design's 200 ms
FAST_SILENCE_MS = MODE_SILENCE_MS["fast"]  # 150 ms, which the adaptive end of turn makes safe
# The configurations the pause set goes straight into the ASR with: without the adaptive end of turn, with it
# alone, and with all.
PAUSE_CONFIGS = ("all_off", "adaptive_endpointing", "all_on")
LLM_MAX_TOKENS = 16
TURN_TIMEOUT_S = 60.0
# Issue 9's targets, checked (printed), not asserted.
TARGET_RATIO = 0.6
TARGET_OVERHEAD_MS = 5.0
PROMETHEUS_COUNTER = "voice_gateway_preemptive_turns_total"

# The first-phrase sweep: first_phrase_words, the last being a whole first clause (the gateway's setting
# with the short first phrase off).
FIRST_PHRASE_WORDS = (2, 3, 4, 6, LONG_FIRST_PHRASE_WORDS)
# Coaching replies whose first clause is long (no comma early on), so that each setting cuts it elsewhere.
SWEEP_TEXTS = (
    "That was a much stronger answer than your first attempt at it. Keep the same structure next time.",
    "Try to open with a short story about a problem you solved last year. Then make your point.",
    "Most interviewers want to hear how you think more than a perfect answer. So think out loud.",
    "Your voice sounded calm and clear for most of the answer you just gave. The ending was rushed.",
    "It helps to write down three examples from your last job before the interview. Practice them aloud.",
    "A good way to handle that question is to admit the gap and explain what you learned. Keep it short.",
)
_CLAUSE_END = re.compile(r"[.!?…,;:\u2014\u2013][\"')\]}\u201d\u2019]*(\s|$)")


def configurations() -> dict[str, gateway_pb2.LatencyOptions]:
    """Name -> the session's LatencyOptions: all off, each technique alone, all on. Every field is set,
    so that the gateway's own --latency-mode decides nothing."""

    def options(on: tuple[str, ...], silence_ms: int) -> gateway_pb2.LatencyOptions:
        return gateway_pb2.LatencyOptions(**{name: name in on for name in TECHNIQUES}, min_silence_ms=silence_ms)

    configs = {"all_off": options((), BASELINE_SILENCE_MS)}
    for name in TECHNIQUES:
        configs[name] = options((name,), FAST_SILENCE_MS if name == "adaptive_endpointing" else BASELINE_SILENCE_MS)
    configs["all_on"] = options(TECHNIQUES, FAST_SILENCE_MS)
    return configs


def describe_options(options: gateway_pb2.LatencyOptions) -> dict[str, object]:
    return {**{name: getattr(options, name) for name in TECHNIQUES}, "min_silence_ms": options.min_silence_ms}


def rotated(names: list[str] | tuple[str, ...], by: int) -> list[str]:
    shift = by % len(names)
    return [*names[shift:], *names[:shift]]


# ---- the gateway's speculation counter


class Preemptions:
    """Reads voice_gateway_preemptive_turns_total{outcome} from the gateway's /metrics; None: not reachable."""

    def __init__(self, address: str | None) -> None:
        self._url = f"http://{address}/metrics" if address else None

    def read(self) -> dict[str, float] | None:
        if self._url is None:
            return None
        try:
            with urllib.request.urlopen(self._url, timeout=2.0) as response:
                text = response.read().decode()
        except OSError:
            return None
        counts = {"kept": 0.0, "discarded": 0.0}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == PROMETHEUS_COUNTER and sample.labels.get("outcome") in counts:
                    counts[sample.labels["outcome"]] = sample.value
        return counts


def counted(before: dict[str, float] | None, after: dict[str, float] | None) -> dict[str, int] | None:
    if before is None or after is None:
        return None
    return {outcome: int(after[outcome] - before[outcome]) for outcome in before}


# ---- one spoken turn


async def spoken_turn(
    talk: Conversation, audio: Pcm16Audio, preemptions: Preemptions, quiet_s: float
) -> tuple[TurnResult, dict[str, int] | None]:
    """Says ``audio``, waits for the answer and then for ``quiet_s`` of quiet (a second end of turn, or
    a late event, lands in this turn and not the session's next); returns every event since it began,
    and the speculations the gateway kept and discarded meanwhile (only this session was speaking)."""
    before = await asyncio.to_thread(preemptions.read)
    start = len(talk.events)
    result = await talk.speak(audio, max_wait_s=TURN_TIMEOUT_S)
    await settle(talk, quiet_s=quiet_s)
    after = await asyncio.to_thread(preemptions.read)
    return TurnResult(talk.events[start:], result.sent_at_ms), counted(before, after)


def finals(result: TurnResult) -> list[gateway_pb2.ConverseResponse]:
    return [e for _, e in result.of("final_transcript") if e.final_transcript.text.strip()]


def first_phrase_cut(reply: str, tokens: int, max_tokens: int | None) -> bool:
    """The reply stopped at the token limit before its first clause ended: a whole-clause first phrase
    was then cut short by the limit (and its TTS started sooner than a longer reply's would)."""
    if max_tokens is None or tokens < max_tokens:
        return False
    return _CLAUSE_END.search(reply.rstrip()) is None


def turn_row(
    config: str, number: int, text: str, result: TurnResult, counts: dict[str, int] | None, max_tokens: int | None
) -> dict[str, Any]:
    answer = result.answer()
    said = finals(result)
    row: dict[str, Any] = {
        "config": config,
        "round": number,
        "question": text,
        **result.metrics(),
        "preemptive": bool(answer and answer.preemptive),
        "asr_reused": any(e.final_transcript.reused for e in said),
        "ends_of_turn": len(said),
        "errors": [f"{e.backend}:{e.code}" for e in result.errors],
    }
    if answer is not None:
        reply = result.reply_of(answer.turn_id)
        row |= {"llm_tokens": answer.llm_tokens, "reply": reply}
        row["first_phrase_cut_by_max_tokens"] = first_phrase_cut(reply, answer.llm_tokens, max_tokens)
    if counts is not None:
        row |= {"preemptions_kept": counts["kept"], "preemptions_discarded": counts["discarded"]}
    return row


def pause_row(config: str, sample: PausedSample, result: TurnResult, counts: dict[str, int] | None) -> dict[str, Any]:
    """One paused utterance: how many times the turn ended, and whether the agent spoke too early."""
    ends = [e.speech_ended for _, e in result.of("speech_ended")]
    said = finals(result)
    agent = [t for t, e in result.of("agent_text")] + [t for t, e in result.of("agent_audio")]
    turns = {e.turn_metrics.turn_id for _, e in result.of("turn_metrics")}
    started = result.of("speech_started")
    early = False
    finished_at = None
    if started:
        # The utterance's last speech sample, in stream audio: where the ASR heard it begin, plus the
        # sample's own speech length (the ASR's start is within a frame or two of the sample's).
        last_sample_ms = started[0][1].speech_started.offset_ms + sample.speech_end_ms - sample.speech_start_ms
        finished_at = result.sent_at_ms.get(last_sample_ms // 100 * 100)
        early = finished_at is not None and any(t < finished_at for t in agent)
    false_end = len(ends) > 1 or len(said) > 1 or early
    metrics = result.metrics()
    row: dict[str, Any] = {
        "config": config,
        "text": sample.text,
        "pause_ms": [end - start for start, end in sample.pauses],
        "ends_of_turn": len(ends),
        "finals": [e.final_transcript.text for e in said],
        "agent_turns": len(turns),
        "interrupted_turns": len(result.of("interruption")),
        "agent_before_user_finished": early,
        "false_end_of_turn": false_end,
        "e2e_ms": metrics.get("e2e_ms"),
        "vad_wait_ms": metrics.get("vad_wait_ms"),
        "preemptive": bool((answer := result.answer()) and answer.preemptive),
        "errors": [f"{e.backend}:{e.code}" for e in result.errors],
    }
    if counts is not None:
        row |= {"preemptions_kept": counts["kept"], "preemptions_discarded": counts["discarded"]}
    return row


# ---- the sessions


async def conversations(
    gateway: str,
    preemptions: Preemptions,
    turns: int,
    block: int,
    warmup: bool,
    pause_samples: list[PausedSample],
    max_tokens: int | None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every configuration's session, open at once, taking turns block by block: one uncounted turn (a
    paused utterance, which refills the LLM's cache with this session's prompt), then ``block`` counted
    questions; the order of the configurations rotates each round. Returns the question rows and the
    uncounted turns' pause rows."""
    configs = configurations()
    names = list(configs)
    questions = [QUESTIONS[i % len(QUESTIONS)] for i in range(turns)]
    rounds = -(-turns // block)
    rows: list[dict[str, Any]] = []
    pauses: list[dict[str, Any]] = []
    async with grpc.aio.insecure_channel(gateway) as channel, contextlib.AsyncExitStack() as sessions:
        talks = {
            name: await sessions.enter_async_context(Conversation(channel, latency=options))
            for name, options in configs.items()
        }
        for number in range(rounds):
            progress(f"round {number + 1}/{rounds}: a block of turns per configuration ...")
            for position, name in enumerate(rotated(names, number)):
                talk, offset = talks[name], names.index(name)
                if warmup:
                    sample = pause_samples[(number * len(names) + offset) % len(pause_samples)]
                    result, counts = await spoken_turn(talk, sample.audio, preemptions, 1.0)
                    pauses.append(pause_row(name, sample, result, counts))
                for index in range(number * block, min(turns, (number + 1) * block)):
                    # Each configuration asks the same questions, each in its own order.
                    question = questions[(index + offset) % turns]
                    result, counts = await spoken_turn(talk, spoken(question), preemptions, 0.5)
                    row = turn_row(name, number + 1, question, result, counts, max_tokens)
                    rows.append(row)
                    shown = {k: row.get(k) for k in ("e2e_ms", *BREAKDOWN, "preemptive", "asr_reused")}
                    progress(f"  {position + 1}. {name}: {shown}")
    return rows, pauses


async def pause_set(asr: str, samples: list[PausedSample]) -> list[dict[str, Any]]:
    """The pause set straight into the ASR, with the RecognitionConfig the gateway sends for each of
    PAUSE_CONFIGS (gateway.latency), one stream per utterance at real-time pace; configurations take
    turns utterance by utterance. An end of turn is a SpeechEnded: it is false if there is more than one,
    or if it puts the end of the speech before the utterance's last part began."""
    configs = configurations()
    incomplete_silence_ms = GatewayConfig().latency.incomplete_silence_ms
    rows = []
    async with grpc.aio.insecure_channel(asr) as channel:
        for index, sample in enumerate(samples):
            for name in rotated(PAUSE_CONFIGS, index):
                plan = LatencyPlan.for_mode("fast").with_options(**latency_choices(configs[name]))
                options = plan.recognition_options(incomplete_silence_ms)
                result = await recognize(channel, sample.audio, **options)
                ends = [event.speech_ended for event in result.of("speech_ended")]
                early = [end.offset_ms for end in ends if end.offset_ms < sample.last_part_start_ms]
                rows.append(
                    {
                        "config": name,
                        "text": sample.text,
                        "ends_of_turn": len(ends),
                        "speech_end_ms": [end.offset_ms for end in ends],
                        "last_part_start_ms": sample.last_part_start_ms,
                        "finals": [t.text for t in result.finals if t.text.strip()],
                        "false_end_of_turn": len(ends) > 1 or bool(early),
                        # silence waited after the utterance's real end, as the ASR decided it
                        "vad_wait_ms": ends[-1].decision_offset_ms - ends[-1].offset_ms if ends else None,
                        "paused_events": len(result.of("paused")),
                    }
                )
                progress(f"  {name}: {rows[-1]['finals']}, false end of turn: {rows[-1]['false_end_of_turn']}")
    return rows


async def complete_sets(tts: str, quick: bool) -> dict[str, list[SpokenSample]]:
    """Complete sentences: real human speech (the recorded call's turns), the stack's TTS voice saying
    NATURAL_SENTENCES (some with a real pause inside), and espeak's questions."""
    natural = await natural_speech([(tts, "")], lead_ms=300, tail_ms=1500)
    espeak = [speak(text, lead_ms=300, tail_ms=1500) for text in (*COMPLETE_QUESTIONS, *QUESTIONS)]
    sets = {"recorded_human": recorded_turns(tail_ms=1500), "tts_voice": natural, "espeak": espeak}
    return {kind: samples[:2] for kind, samples in sets.items()} if quick else sets


async def complete_speech(asr: str, sets: dict[str, list[SpokenSample]]) -> list[dict[str, Any]]:
    """Speech that ends with a complete sentence straight into the ASR with all_on's RecognitionConfig,
    one real-time stream per utterance: how long the end of turn waits after it (vad_wait_ms), and
    whether the turn ended more than once (inside a natural sentence's own pause, it may)."""
    options = LatencyPlan.for_mode("fast").recognition_options(GatewayConfig().latency.incomplete_silence_ms)
    rows = []
    async with grpc.aio.insecure_channel(asr) as channel:
        for kind, samples in sets.items():
            for sample in samples:
                result = await recognize(channel, sample.audio, **options)
                ends = [event.speech_ended for event in result.of("speech_ended")]
                rows.append(
                    {
                        "set": kind,
                        "text": sample.text,
                        "ends_of_turn": len(ends),
                        "vad_wait_ms": ends[-1].decision_offset_ms - ends[-1].offset_ms if ends else None,
                        "finals": [t.text for t in result.finals if t.text.strip()],
                    }
                )
            progress(f"  {kind}: {len(samples)} utterances")
    return rows


def complete_speech_report(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        kind: {
            "utterances": len(group),
            "vad_wait_ms": summary([r["vad_wait_ms"] for r in group if r["vad_wait_ms"] is not None]),
            "ended_more_than_once": sum(1 for r in group if r["ends_of_turn"] > 1),
        }
        for kind in dict.fromkeys(row["set"] for row in rows)
        if (group := [row for row in rows if row["set"] == kind])
    }


# ---- the first-phrase sweep


def playback_stall_ms(synthesis: Synthesis) -> float:
    """Silence a listener would hear mid-reply, playing the audio from its first chunk on as it arrives:
    a first phrase that ends before the next phrase's audio is ready leaves a gap."""
    if not synthesis.chunks:
        return 0.0
    stall, play_until = 0.0, synthesis.chunks[0][0]
    for arrived, chunk in synthesis.chunks:
        if arrived > play_until:
            stall += arrived - play_until
            play_until = arrived
        play_until += len(chunk.audio) / 2 / chunk.sample_rate_hz
    return round(stall * 1000, 1)


async def first_phrase_sweep(
    tts: str, asr: str | None, texts: tuple[str, ...], settings: tuple[int, ...]
) -> dict[str, Any]:
    """TTFA, the first phrase's length and the playback stall per first_phrase_words, from the TTS alone
    (the whole text at once: no waiting for the LLM), and, with ``asr``, how well the ASR service
    understands the audio: a phrase is synthesised on its own, so a short first phrase gets the pitch
    and the pause of a sentence's end. Settings take turns text by text."""
    measured: dict[int, dict[str, list[float]]] = {w: {"ttfa": [], "words": [], "stall": []} for w in settings}
    heard: dict[int, list[str]] = {w: [] for w in settings}
    async with grpc.aio.insecure_channel(tts) as channel, contextlib.AsyncExitStack() as stack:
        listener = await stack.enter_async_context(grpc.aio.insecure_channel(asr)) if asr else None
        await synthesize(channel, texts[0])  # warm-up
        for text in texts:
            for words in settings:
                result = await synthesize(channel, text, first_phrase_words=words)
                start, end = result.phrases[0] if result.chunks else (0, 0)
                measured[words]["ttfa"].append(result.ttfa_ms or float("nan"))
                measured[words]["words"].append(len(text[start:end].split()))
                measured[words]["stall"].append(playback_stall_ms(result))
                if listener is not None and result.chunks:
                    audio = result.audio().resampled(ASR_SAMPLE_RATE)
                    heard[words].append((await recognize(listener, audio, realtime=False)).text)
    return {
        str(words): {
            "label": "whole first clause" if words == LONG_FIRST_PHRASE_WORDS else f"{words} words",
            "ttfa_ms": summary(values["ttfa"]),
            "first_phrase_words_p50": summary(values["words"])["p50"],
            "playback_stall_ms": summary(values["stall"]),
            "heard_wer": round(word_error_rate(list(texts), heard[words]), 4) if heard[words] else None,
        }
        for words, values in measured.items()
    }


# ---- the report


def config_report(options: gateway_pb2.LatencyOptions, rows: list[dict[str, Any]]) -> dict[str, Any]:
    answered = [row for row in rows if "e2e_ms" in row and not row["errors"]]
    kept = sum(row.get("preemptions_kept", 0) for row in rows)
    discarded = sum(row.get("preemptions_discarded", 0) for row in rows)
    scraped = any("preemptions_kept" in row for row in rows)
    preemptive = sum(1 for row in answered if row["preemptive"])
    return {
        "options": describe_options(options),
        "turns": len(rows),
        "failed_turns": len(rows) - len(answered),
        "e2e_ms": summary([row["e2e_ms"] for row in answered]),
        "stages_ms": {stage: summary([row[stage] for row in answered]) for stage in BREAKDOWN},
        "gateway_first_audio_ms": summary([row["gateway_first_audio_ms"] for row in answered]),
        # The gateway's own share (as benchmarks.e2e has it): the final transcript to the first audio sent,
        # less the LLM's and TTS's times. Not for preemptive turns, whose LLM started before the final.
        "gateway_own_ms": summary(
            [
                row["gateway_first_audio_ms"] - row["llm_ttft_ms"] - row["tts_ttfa_ms"]
                for row in answered
                if not row["preemptive"]
            ]
        ),
        "preemptive_turns": preemptive,
        "preemptive_share": round(preemptive / len(answered), 3) if answered else None,
        "preemptions_kept": kept if scraped else None,
        "preemptions_discarded": discarded if scraped else None,
        "keep_rate": round(kept / (kept + discarded), 3) if scraped and kept + discarded else None,
        "asr_reused_turns": sum(1 for row in answered if row["asr_reused"]),
        "extra_ends_of_turn": sum(max(0, row["ends_of_turn"] - 1) for row in rows),
        "first_phrase_cut_by_max_tokens": sum(1 for row in answered if row.get("first_phrase_cut_by_max_tokens")),
    }


def false_ends(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """How often paused utterances were cut: utterances cut, their share, and the extra ends of turn."""
    cut = sum(1 for row in rows if row["false_end_of_turn"])
    return {
        "utterances": len(rows),
        "false_ends_of_turn": cut,
        "false_end_of_turn_rate": round(cut / len(rows), 3) if rows else None,
        "extra_ends_of_turn": sum(max(0, row["ends_of_turn"] - 1) for row in rows),
    }


def pause_report(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The paused utterances spoken through the gateway (each block's uncounted first turn)."""
    return {
        **false_ends(rows),
        "agent_before_user_finished": sum(1 for row in rows if row["agent_before_user_finished"]),
        "interrupted_agent_turns": sum(row["interrupted_turns"] for row in rows),
        "preemptions_kept": sum(row.get("preemptions_kept", 0) for row in rows),
        "preemptions_discarded": sum(row.get("preemptions_discarded", 0) for row in rows),
    }


def asr_pause_report(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The pause set straight into the ASR, per configuration."""
    return {
        **false_ends(rows),
        "vad_wait_ms": summary([row["vad_wait_ms"] for row in rows if row["vad_wait_ms"] is not None]),
    }


def targets(report: dict[str, Any], pauses: dict[str, Any]) -> dict[str, Any]:
    off, on = report["all_off"], report["all_on"]
    ratio = on["e2e_ms"]["p50"] / off["e2e_ms"]["p50"] if off["e2e_ms"]["n"] and on["e2e_ms"]["n"] else None
    overhead = on["stages_ms"]["overhead_ms"]["p50"]
    false_on = pauses["all_on"]["false_ends_of_turn"] if pauses["all_on"]["utterances"] else None
    stages = {stage: on["stages_ms"][stage]["p50"] for stage in BREAKDOWN}
    return {
        "e2e_p50_all_on_over_all_off": round(ratio, 3) if ratio is not None else None,
        "e2e_p50_ratio_target": TARGET_RATIO,
        "e2e_p50_ratio_met": ratio is not None and ratio <= TARGET_RATIO,
        "all_on_overhead_ms_p50": overhead,
        "overhead_target_ms": TARGET_OVERHEAD_MS,
        "overhead_met": overhead == overhead and overhead <= TARGET_OVERHEAD_MS,
        # With preemption the LLM starts before the final transcript, so stages overlap and overhead_ms (e2e
        # less the four stages) goes negative: the gateway's own share of a warm, non-preemptive turn is the
        # figure that says what the gateway costs.
        "warm_paths_gateway_own_ms_p50": report["warm_paths"]["gateway_own_ms"]["p50"],
        "all_on_false_ends_of_turn": false_on,
        "false_end_of_turn_met": false_on == 0,
        "all_on_largest_stage": max(stages, key=lambda stage: stages[stage]) if on["e2e_ms"]["n"] else None,
    }


def table(report: dict[str, Any], pauses: dict[str, Any], gateway_pauses: dict[str, Any]) -> str:
    """The side-by-side table, as Markdown: one row per configuration."""
    head = ["configuration", "silence", "e2e p50 / p95", *(s.removesuffix("_ms") for s in BREAKDOWN)]
    head += ["preemptive", "kept / discarded", "false EOT: pause set", "through the gateway"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, config in report.items():
        e2e, stages = config["e2e_ms"], config["stages_ms"]
        pause, spoken_pause = pauses.get(name), gateway_pauses[name]
        speculation = (
            ""
            if config["preemptions_kept"] is None
            else f"{config['preemptions_kept']} / {config['preemptions_discarded']}"
        )
        cells = [
            name,
            str(config["options"]["min_silence_ms"]),
            f"{e2e['p50']:.0f} / {e2e['p95']:.0f}",
            *(f"{stages[s]['p50']:.0f}" for s in BREAKDOWN),
            f"{config['preemptive_turns']}/{config['e2e_ms']['n']}",
            speculation,
            "" if pause is None else f"{pause['false_ends_of_turn']}/{pause['utterances']}",
            f"{spoken_pause['false_ends_of_turn']}/{spoken_pause['utterances']}" if spoken_pause["utterances"] else "",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def sweep_table(sweep: dict[str, Any]) -> str:
    lines = [
        "| first phrase | words (p50) | TTFA p50 / p95 ms | playback stall p50 / p95 ms | WER heard by the ASR |",
        "|---|---|---|---|---|",
    ]
    for entry in sweep.values():
        ttfa, stall = entry["ttfa_ms"], entry["playback_stall_ms"]
        wer = "" if entry.get("heard_wer") is None else f"{100 * entry['heard_wer']:.1f} %"
        lines.append(
            f"| {entry['label']} | {entry['first_phrase_words_p50']:.0f} | {ttfa['p50']:.0f} / {ttfa['p95']:.0f} "
            f"| {stall['p50']:.0f} / {stall['p95']:.0f} | {wer} |"
        )
    return "\n".join(lines)


def plot(report: dict[str, Any], sweep: dict[str, Any] | None, results: Path) -> None:
    plt = pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8), gridspec_kw={"width_ratios": [2.2, 1]})
    labels = [name.replace("_", "\n") for name in report]
    bottom = [0.0] * len(labels)
    for stage in BREAKDOWN:
        heights = [max(0.0, config["stages_ms"][stage]["p50"]) for config in report.values()]
        left.bar(labels, heights, bottom=bottom, color=STAGE_COLOURS[stage], label=f"{stage} p50")
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    left.plot(labels, [c["e2e_ms"]["p50"] for c in report.values()], "k_", markersize=28, label="e2e_ms p50")
    left.plot(labels, [c["e2e_ms"]["p95"] for c in report.values()], "kv", markersize=5, label="e2e_ms p95")
    left.axhline(DESIGN_TARGET_MS, color="green", linestyle="--", linewidth=1, label=f"goal {DESIGN_TARGET_MS} ms")
    left.axhline(DESIGN_TODAY_MS, color="red", linestyle=":", linewidth=1, label=f"design today {DESIGN_TODAY_MS} ms")
    left.set_ylabel("ms (stages: p50, stacked; negative overhead not drawn)")
    left.set_title("Each latency technique off, alone and all on (one run)")
    tallest = max([*bottom, *(c["e2e_ms"]["p95"] for c in report.values()), DESIGN_TODAY_MS])
    left.set_ylim(0, 1.4 * tallest)  # room for the legend above the bars
    left.tick_params(axis="x", labelsize=7)
    left.legend(fontsize=7, loc="upper right", ncol=2)
    if sweep:
        xs = [entry["label"].replace(" words", "").replace("whole first clause", "clause") for entry in sweep.values()]
        right.plot(xs, [entry["ttfa_ms"]["p50"] for entry in sweep.values()], "o-", label="TTFA p50")
        right.plot(xs, [entry["playback_stall_ms"]["p50"] for entry in sweep.values()], "s--", label="stall p50")
        right.set_xlabel("first_phrase_words")
        right.set_ylabel("ms")
        right.set_title("First phrase length, TTS alone")
        right.legend(fontsize=8)
        right.grid(alpha=0.3)
    else:
        right.set_axis_off()
    save_figure(figure, plot_path(results))


def main() -> None:
    parser = arg_parser(__doc__, "latency")
    add_stack_arguments(parser)
    parser.add_argument("--tts-engine", dest="engine", choices=ENGINES, help="same as --engine")
    parser.add_argument("--gateway-metrics", help="with --gateway: its Prometheus host:port, for the keep rate")
    parser.add_argument("--turns", type=int, help="counted questions per configuration (default 6; --quick 1)")
    parser.add_argument("--block", type=int, help="questions a configuration asks in a row (default 3; --quick 1)")
    parser.add_argument("--no-warmup", action="store_true", help="no uncounted turn before each block")
    parser.add_argument(
        "--pause-utterances",
        type=int,
        help=f"of the pause set, per configuration (default {len(PAUSE_SET)}; --quick 1)",
    )
    parser.add_argument(
        "--llm-max-tokens", type=int, default=LLM_MAX_TOKENS, help=f"a fresh gateway's longest reply ({LLM_MAX_TOKENS})"
    )
    parser.add_argument(
        "--sweep-texts",
        type=int,
        help=f"texts in the first-phrase sweep, up to {len(SWEEP_TEXTS)} (default 4; --quick 1)",
    )
    parser.add_argument("--no-sweep", action="store_true", help="skip the first-phrase sweep")
    parser.add_argument(
        "--no-complete", action="store_true", help="skip the end of turn after complete sentences (recorded, spoken)"
    )
    args = parser.parse_args()
    turns = args.turns or (1 if args.quick else 6)
    block = min(turns, args.block or (1 if args.quick else 3))
    pause_count = min(len(PAUSE_SET), args.pause_utterances or (1 if args.quick else len(PAUSE_SET)))
    warmup = not args.no_warmup
    out = results_path(args.out, "latency")
    gateway_args = ["--latency-mode", "fast", "--llm-max-tokens", str(args.llm_max_tokens)]

    progress("making the test speech with espeak-ng ...")
    for question in QUESTIONS:
        spoken(question)
    # Spoken through the gateway, the silence after the speech is the microphone's; straight into the ASR,
    # the stream carries enough of it to outlast the longest end-of-turn wait.
    spoken_pauses = [speak_with_pauses(parts, lead_ms=300, tail_ms=0) for parts in PAUSE_SET]
    asr_pauses = [speak_with_pauses(parts, lead_ms=300, tail_ms=1000) for parts in PAUSE_SET[:pause_count]]
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as logs, stack_from_args(args, Path(logs), {"gateway": gateway_args}) as stack:
        fresh = bool(stack.started)
        metrics_address = args.gateway_metrics
        if fresh:
            gateway = next(server for server in stack.started if server.name == "gateway")
            metrics_address = f"127.0.0.1:{gateway.metrics_port}"
        preemptions = Preemptions(metrics_address)
        if preemptions.read() is None:
            progress("the gateway's /metrics is not reachable: no keep rate from its counter")
        max_tokens = args.llm_max_tokens if fresh else None
        meter = CpuMeter(stack.pids)
        rows, spoken_pause_rows = asyncio.run(
            conversations(stack.gateway, preemptions, turns, block, warmup, spoken_pauses, max_tokens)
        )
        cpu = meter.stop()
        pause_rows: list[dict[str, Any]] = []
        if "asr" in stack.addresses:
            progress(f"the pause set, {pause_count} utterance(s) x {len(PAUSE_CONFIGS)} configurations, ASR alone ...")
            pause_rows = asyncio.run(pause_set(stack.addresses["asr"], asr_pauses))
        complete_rows: list[dict[str, Any]] = []
        if "asr" in stack.addresses and "tts" in stack.addresses and not args.no_complete:
            progress("end of turn after complete sentences (all_on), ASR alone: recorded, TTS-spoken, espeak ...")
            sets = asyncio.run(complete_sets(stack.addresses["tts"], args.quick))
            complete_rows = asyncio.run(complete_speech(stack.addresses["asr"], sets))
        sweep = None
        if not args.no_sweep and "tts" in stack.addresses:
            words = (3, LONG_FIRST_PHRASE_WORDS) if args.quick else FIRST_PHRASE_WORDS
            texts = SWEEP_TEXTS[: args.sweep_texts or (1 if args.quick else 4)]
            progress(f"first-phrase sweep: {len(texts)} texts x first_phrase_words {words}, TTS alone ...")
            sweep = asyncio.run(first_phrase_sweep(stack.addresses["tts"], stack.addresses.get("asr"), texts, words))
        description = stack.describe()
    configs = configurations()
    report = {
        name: config_report(options, [r for r in rows if r["config"] == name]) for name, options in configs.items()
    }
    pauses = {name: asr_pause_report([r for r in pause_rows if r["config"] == name]) for name in PAUSE_CONFIGS}
    complete = complete_speech_report(complete_rows)
    gateway_pauses = {name: pause_report([r for r in spoken_pause_rows if r["config"] == name]) for name in configs}
    checks = targets(report, pauses)
    results = {
        **run_info(),
        "stack": {**description, "latency_mode": "fast" if fresh else None, "llm_max_tokens": max_tokens},
        "settings": {
            "turns_per_configuration": turns,
            "block": block,
            "warmup_turn_per_block": warmup,
            "pause_utterances": pause_count,
            "baseline_silence_ms": BASELINE_SILENCE_MS,
            "fast_silence_ms": FAST_SILENCE_MS,
            "incomplete_silence_ms": GatewayConfig().latency.incomplete_silence_ms,
            "quick": args.quick,
        },
        "runtime_s": round(time.perf_counter() - began, 1),
        "other_processes_cores": cpu["other_cores"],
        "process_cpu": cpu["processes"],
        "configurations": report,
        "pause_set": pauses,
        "end_of_turn_after_complete_speech": complete,
        "pause_set_through_gateway": gateway_pauses,
        "first_phrase_sweep": sweep,
        "targets": checks,
        "turns": rows,
        "pause_utterances": pause_rows,
        "complete_speech_utterances": complete_rows,
        "pause_utterances_through_gateway": spoken_pause_rows,
    }
    write_results(out, results)
    plot(report, sweep, out)
    print(f"\nTTS: {description['tts_engine']}, LLM replies of at most {max_tokens} tokens; p50 ms unless marked\n")
    print(table(report, pauses, gateway_pauses))
    if sweep:
        print("\nFirst phrase, TTS alone:\n\n" + sweep_table(sweep))
    if complete:
        print("\nEnd of turn after a complete sentence, all_on, ASR alone (vad_wait_ms p50 / p95):\n")
        for kind, entry in complete.items():
            wait = entry["vad_wait_ms"]
            print(
                f"  {kind}: {wait['p50']:.0f} / {wait['p95']:.0f} ms over {entry['utterances']}; "
                f"{entry['ended_more_than_once']} ended more than once"
            )
    print(
        f"\ntargets: all_on/all_off e2e p50 = {checks['e2e_p50_all_on_over_all_off']} (<= {TARGET_RATIO}: "
        f"{'met' if checks['e2e_p50_ratio_met'] else 'MISSED'}); all_on overhead p50 = "
        f"{checks['all_on_overhead_ms_p50']} ms (<= {TARGET_OVERHEAD_MS:g}: "
        f"{'met' if checks['overhead_met'] else 'MISSED'}); all_on false ends of turn on the pause set = "
        f"{checks['all_on_false_ends_of_turn']} (0: {'met' if checks['false_end_of_turn_met'] else 'MISSED'}); "
        f"largest all_on stage: {checks['all_on_largest_stage']}; run took {results['runtime_s']:.0f} s"
    )


if __name__ == "__main__":
    main()
