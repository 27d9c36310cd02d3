"""End of turn: the text heuristic against Smart Turn v3.2, alone and combined.

Offline and in-process (no servers): each sample's audio goes through Silero VAD
and the adaptive Endpointer as services/asr/stream.py runs them in the gateway's
fast mode (150 ms end-of-turn silence, 700 ms after a pause judged incomplete, a
pause noticed 100 ms into the silence). At each pause, each detector judges the
audio the ASR would hand it (the onset pad before the speech to speech_pad_ms
after the silence began, as far as it had arrived), and its verdict reaches the
endpointer after the time the detector took (measured here), as in the service:

- ``text``: Whisper's pause transcript (tiny.en, beam 5, the AsrConfig default),
  then ``services.asr.turn_end.reads_complete``;
- ``smart_turn``: Smart Turn v3.2's probability >= 0.5 (its own threshold; a
  sweep of thresholds is in the JSON);
- ``both``: complete only when both say so (the two run one after the other in
  the one-worker inference pool: their times add up);
- ``either``: complete when either says so (evaluated, not offered).

Sets (voice_ops.human_speech has the recorded ones and says where each comes from):

- pauses inside sentences, each at 300, 450 and 600 ms; a false end of turn is an end of the utterance
  before its last part began (or more than one end):
  - ``espeak_pause``: PAUSE_SET's 10 sentences spoken by espeak-ng, the pause after a word that cannot
    end them (the regression set);
  - ``human_pause``: 5 recorded human sentences cut at a word boundary after such a word, silence put in;
  - ``human_clause_pause``: 7 cut after a word that can end a sentence ("I didn't know | you were
    there."): only the voice tells that the speaker goes on;
- complete sentences followed by silence: ``human_call`` (the 13 transcript segments of the recorded
  call in the pyannote-audio wheel, telephone band), ``human_arctic`` (2 CMU ARCTIC prompts, wideband)
  and ``espeak`` (COMPLETE_QUESTIONS and QUESTIONS); a miss is the last pause judged incomplete, so the
  end of turn waits 700 ms instead of 150. ``vad_wait_ms`` is the endpointer's wait after the speech
  end, as SpeechEnded reports it.

Then, unless left out:

- ``live``: the human sets through a real ASR service (its own on free ports, or ``--asr``) at real-time
  pace with the fast mode's RecognitionConfig, each of text / smart_turn / both in turn;
- ``e2e``: each recorded human utterance as one turn through ``voice-agent talk`` on the default stack
  (its own on free ports, or ``--gateway``'s), after one uncounted turn: e2e_ms and its stages.

Prints a table and writes benchmarks/results/turn_end.json. ``make bench-turn-end``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from benchmarks.common import QUESTIONS, add_stack_arguments, arg_parser, progress, results_path, stack_from_args
from benchmarks.stats import run_info, summary, write_results
from gateway.config import GatewayConfig
from gateway.latency import LatencyPlan
from services.asr.config import AsrConfig
from services.asr.protocol import DEFAULT_SPEECH_PAD_MS
from services.asr.smart_turn import DEFAULT_THRESHOLD, SmartTurn
from services.asr.transcriber import WhisperTranscriber
from services.asr.turn_end import reads_complete
from services.asr.vad import FRAME_SAMPLES, Endpointer, SileroVad, SpeechEnd, SpeechPause
from voice_agent.audio import ASR_SAMPLE_RATE, StreamResampler, pcm16_to_float
from voice_agent.client.asr import recognize
from voice_ops.human_speech import CLAUSE, FUNCTION_WORD, complete_utterances, paused_sentences
from voice_ops.samples import COMPLETE_QUESTIONS, PAUSE_SET, SpokenSample, save, speak, speak_with_pauses
from voice_ops.stack import start_on_free_ports

# The gateway's fast mode (gateway.latency, GatewayConfig): the ASR settings these verdicts decide under.
MIN_SILENCE_MS = 150
INCOMPLETE_SILENCE_MS = 700
PAUSE_MS = 100  # max(pause_ms, speech_pad_ms): a pause is noticed with the final's padding
PAUSE_LENGTHS_MS = (300, 450, 600)
DETECTORS = ("text", "smart_turn", "both", "either")
THRESHOLDS = (0.3, 0.5, 0.7, 0.9)
MS = ASR_SAMPLE_RATE // 1000


@dataclass
class Judgement:
    """What one detector said about one pause, and how long it took (wall and CPU ms)."""

    complete: bool
    ms: float
    cpu_ms: float
    detail: str | float


@dataclass
class Sample:
    kind: str  # pause_300 ... / recorded_human / espeak
    text: str
    audio: np.ndarray  # 16 kHz float32
    last_part_start: int | None = None  # pause set: where the sentence's last part begins (samples)
    probabilities: list[float] = field(default_factory=list)  # the VAD's, per frame


class Judges:
    """Runs each model once per pause audio and keeps the result, so that every detector and threshold
    judges the same inference."""

    def __init__(self, transcriber: WhisperTranscriber, smart_turn: SmartTurn) -> None:
        self._transcriber, self._smart_turn = transcriber, smart_turn
        self._text: dict[bytes, tuple[str, float, float]] = {}
        self._prob: dict[bytes, tuple[float, float, float]] = {}

    def text(self, audio: np.ndarray) -> tuple[str, float, float]:
        key = audio.tobytes()
        if key not in self._text:
            self._text[key] = _timed(lambda: self._transcriber.transcribe(audio, "en").text)
        return self._text[key]

    def probability(self, audio: np.ndarray) -> tuple[float, float, float]:
        key = audio.tobytes()
        if key not in self._prob:
            self._prob[key] = _timed(lambda: self._smart_turn.predict(audio))
        return self._prob[key]

    def judge(self, detector: str, audio: np.ndarray, threshold: float) -> Judgement:
        text, text_ms, text_cpu = self.text(audio) if detector != "smart_turn" else ("", 0.0, 0.0)
        prob, prob_ms, prob_cpu = self.probability(audio) if detector != "text" else (0.0, 0.0, 0.0)
        by_text, by_audio = reads_complete(text), prob >= threshold
        complete = {"text": by_text, "smart_turn": by_audio, "both": by_text and by_audio}.get(
            detector, by_text or by_audio
        )
        detail: str | float = f"{text!r} p={prob:.2f}" if detector in ("both", "either") else (text or prob)
        return Judgement(complete, text_ms + prob_ms, text_cpu + prob_cpu, detail)


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return value, (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000


def simulate(sample: Sample, judge: Callable[[np.ndarray], Judgement]) -> dict[str, Any]:
    """The fast mode's endpointer over the sample, each pause's verdict arriving after the detector's time."""
    endpointer = Endpointer(0.5, MIN_SILENCE_MS, 30_000, pause_ms=PAUSE_MS, incomplete_silence_ms=INCOMPLETE_SILENCE_MS)
    pad, onset_pad = DEFAULT_SPEECH_PAD_MS * MS, AsrConfig().onset_pad_ms * MS
    pending: list[tuple[int, SpeechPause, Judgement]] = []  # (arrives at sample, pause, verdict)
    ends: list[SpeechEnd] = []
    judged: list[tuple[SpeechPause, Judgement]] = []
    last_end = 0
    for index, probability in enumerate(sample.probabilities):
        frame_end = (index + 1) * FRAME_SAMPLES
        # A verdict that arrives before this frame's audio is complete is judged with the frame before as
        # the last one pushed, as the service's stream does (SpeechEnd.decided_at counts frames).
        events: list[Any] = []
        for arrives, pause, verdict in [p for p in pending if p[0] < frame_end]:
            pending.remove((arrives, pause, verdict))
            end = endpointer.judge(pause, verdict.complete)
            if end is not None:
                events.append(end)
        events += endpointer.push(probability, frame_end)
        for event in events:
            if isinstance(event, SpeechPause):
                onset = max(event.start - onset_pad, min(event.start - pad, last_end))
                audio = sample.audio[max(onset, 0) : min(event.silence_from + pad, event.at)]
                verdict = judge(audio)
                judged.append((event, verdict))
                pending.append((event.at + int(verdict.ms * MS), event, verdict))
            elif isinstance(event, SpeechEnd):
                ends.append(event)
                last_end = event.end
    final = endpointer.finish(len(sample.probabilities) * FRAME_SAMPLES)
    if final is not None:
        ends.append(final)
    row: dict[str, Any] = {"set": sample.kind, "text": sample.text, "ends_of_turn": len(ends)}
    row["end_ms"] = [end.end // MS for end in ends]
    row["vad_wait_ms"] = (ends[-1].decided_at - ends[-1].end) // MS if ends else None
    row["pauses"] = [
        {"at_ms": pause.silence_from // MS, "complete": v.complete, "ms": round(v.ms, 1), "said": v.detail}
        for pause, v in judged
    ]
    row["decision_ms"] = [round(v.ms, 1) for _, v in judged]
    row["decision_cpu_ms"] = [round(v.cpu_ms, 1) for _, v in judged]
    if sample.last_part_start is not None:
        early = [end for end in ends if end.end < sample.last_part_start]
        row["false_end_of_turn"] = len(ends) > 1 or bool(early)
    else:
        last = [v for pause, v in judged if ends and pause.silence_from == ends[-1].end]
        row["last_pause_complete"] = last[-1].complete if last else None
        row["final"] = last[-1].detail if last else None  # the pause transcript the final reuses (text)
        row["miss"] = not (last and last[-1].complete)
    return row


def build_samples(vad: SileroVad, quick: bool) -> list[Sample]:
    sentences = PAUSE_SET[:2] if quick else PAUSE_SET
    samples = []
    for pause_ms in PAUSE_LENGTHS_MS:
        for parts in sentences:
            spoken = speak_with_pauses(parts, pause_ms=pause_ms, lead_ms=300, tail_ms=1500)
            samples.append(_sample(f"espeak_pause_{pause_ms}", spoken, spoken.last_part_start_ms * MS))
        for cut, family in ((FUNCTION_WORD, "human_pause"), (CLAUSE, "human_clause_pause")):
            paused = paused_sentences(cut, pause_ms=pause_ms, tail_ms=1500)
            for spoken in paused[:2] if quick else paused:
                samples.append(_sample(f"{family}_{pause_ms}", spoken, spoken.last_part_start_ms * MS))
    human = complete_utterances(tail_ms=1500)
    call, arctic = [s for s in human if not s.wideband], [s for s in human if s.wideband]
    espeak = [speak(text, lead_ms=300, tail_ms=1500) for text in (*COMPLETE_QUESTIONS, *QUESTIONS)]
    for kind, group in (("human_call", call), ("human_arctic", arctic), ("espeak", espeak)):
        samples += [_sample(kind, spoken) for spoken in (group[:2] if quick else group)]
    for sample in samples:
        stream = vad.stream()
        whole = len(sample.audio) // FRAME_SAMPLES * FRAME_SAMPLES
        sample.probabilities = [
            stream.probability(sample.audio[i : i + FRAME_SAMPLES]) for i in range(0, whole, FRAME_SAMPLES)
        ]
    return samples


def _sample(kind: str, spoken: SpokenSample, last_part_start: int | None = None) -> Sample:
    audio = pcm16_to_float(spoken.audio.data)
    if spoken.audio.sample_rate != ASR_SAMPLE_RATE:
        resampler = StreamResampler(spoken.audio.sample_rate, ASR_SAMPLE_RATE)
        audio = np.concatenate([resampler.process(audio), resampler.flush()])
    return Sample(kind, spoken.text, audio.astype(np.float32), last_part_start)


# The families the table shows: the pause sets by length together, the two human complete sets together.
PAUSE_FAMILIES = ("espeak_pause", "human_pause", "human_clause_pause")
COMPLETE_FAMILIES = {"human": ("human_call", "human_arctic"), "espeak": ("espeak",)}


def _family(kind: str) -> str:
    return kind.rsplit("_", 1)[0] if kind.rsplit("_", 1)[-1].isdigit() else kind


def report(rows: list[dict[str, Any]]) -> dict[str, Any]:
    pauses = [r for r in rows if "false_end_of_turn" in r]
    complete = [r for r in rows if "miss" in r]
    kinds = list(dict.fromkeys(r["set"] for r in rows))
    waits = {
        kind: [r["vad_wait_ms"] for r in complete if r["set"] == kind and r["vad_wait_ms"] is not None]
        for kind in kinds
    }
    decisions = [ms for r in rows for ms in r["decision_ms"]]
    cpu = [ms for r in rows for ms in r["decision_cpu_ms"]]
    return {
        "false_ends": {
            f: sum(r["false_end_of_turn"] for r in pauses if _family(r["set"]) == f) for f in PAUSE_FAMILIES
        },
        "pause_utterances": {f: sum(_family(r["set"]) == f for r in pauses) for f in PAUSE_FAMILIES},
        "false_ends_by_set": {
            k: sum(r["false_end_of_turn"] for r in pauses if r["set"] == k) for k in kinds if "pause" in k
        },
        "misses": {f: sum(r["miss"] for r in complete if r["set"] in sets) for f, sets in COMPLETE_FAMILIES.items()},
        "complete_utterances": {f: sum(r["set"] in sets for r in complete) for f, sets in COMPLETE_FAMILIES.items()},
        "misses_by_set": {k: sum(r["miss"] for r in complete if r["set"] == k) for k in kinds if "pause" not in k},
        "vad_wait_ms": {
            f: summary([w for k in sets for w in waits.get(k, [])]) for f, sets in COMPLETE_FAMILIES.items()
        },
        "vad_wait_ms_by_set": {k: summary(waits[k]) for k in kinds if "pause" not in k},
        "decision_ms": summary(decisions),
        "decision_cpu_ms": summary(cpu),
    }


def table(detectors: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| detector | false ends: espeak pauses | human, pause after a function word | human, pause after a clause "
        "| misses, complete: human / espeak | vad_wait_ms p50 / p95, human | vad_wait_ms p50 / p95, espeak "
        "| ms per decision p50 (CPU ms) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in detectors.items():
        ends = " | ".join(f"{r['false_ends'][f]} / {r['pause_utterances'][f]}" for f in PAUSE_FAMILIES)
        misses = " / ".join(f"{r['misses'][f]} of {r['complete_utterances'][f]}" for f in COMPLETE_FAMILIES)
        waits = " | ".join(
            f"{r['vad_wait_ms'][f]['p50']:.0f} / {r['vad_wait_ms'][f]['p95']:.0f}" for f in COMPLETE_FAMILIES
        )
        decision = f"{r['decision_ms']['p50']:.0f} ({r['decision_cpu_ms']['p50']:.0f})"
        lines.append(f"| {name} | {ends} | {misses} | {waits} | {decision} |")
    return "\n".join(lines)


LIVE_DETECTORS = ("text", "smart_turn", "both")


async def live(asr: str, quick: bool) -> dict[str, Any]:
    """The human sets through a real ASR service, at real-time pace, with the RecognitionConfig the
    gateway's fast mode sends (gateway.latency) and each turn detector in turn, utterance by utterance:
    vad_wait_ms as SpeechEnded reports it, misses (waited incomplete_silence_ms) and false ends."""
    options = LatencyPlan.for_mode("fast").recognition_options(GatewayConfig().latency.incomplete_silence_ms)
    complete = complete_utterances(tail_ms=1500)
    paused = [*paused_sentences(FUNCTION_WORD, tail_ms=1500), *paused_sentences(CLAUSE, tail_ms=1500)]
    if quick:
        complete, paused = complete[:2], paused[:1]
    rows: list[dict[str, Any]] = []
    async with grpc.aio.insecure_channel(asr) as channel:
        for index, sample in enumerate([*complete, *paused]):
            for detector in LIVE_DETECTORS[index % 3 :] + LIVE_DETECTORS[: index % 3]:
                result = await recognize(channel, sample.audio, turn_detector=detector, **options)
                ends = [event.speech_ended for event in result.of("speech_ended")]
                row: dict[str, Any] = {
                    "detector": detector,
                    "set": sample.cut or ("human_arctic" if sample.wideband else "human_call"),
                    "text": sample.text,
                    "ends_of_turn": len(ends),
                    "vad_wait_ms": ends[-1].decision_offset_ms - ends[-1].offset_ms if ends else None,
                    "finals": [t.text for t in result.finals if t.text.strip()],
                }
                if sample.pauses:
                    early = [end for end in ends if end.offset_ms < sample.last_part_start_ms]
                    row["false_end_of_turn"] = len(ends) > 1 or bool(early)
                rows.append(row)
            progress(f"  live {index + 1}: {sample.text[:40]!r}")
    return {"rows": rows, "report": live_report(rows)}


def live_report(rows: list[dict[str, Any]]) -> dict[str, Any]:
    report = {}
    for detector in LIVE_DETECTORS:
        mine = [r for r in rows if r["detector"] == detector]
        complete = [r for r in mine if "false_end_of_turn" not in r]
        waits = [r["vad_wait_ms"] for r in complete if r["vad_wait_ms"] is not None]
        report[detector] = {
            "vad_wait_ms": summary(waits),
            "misses": sum(w >= INCOMPLETE_SILENCE_MS for w in waits),
            "complete_utterances": len(complete),
            "false_ends": {
                cut: sum(r["false_end_of_turn"] for r in mine if r["set"] == cut) for cut in (FUNCTION_WORD, CLAUSE)
            },
            "pause_utterances": {cut: sum(r["set"] == cut for r in mine) for cut in (FUNCTION_WORD, CLAUSE)},
        }
    return report


def live_table(report: dict[str, Any]) -> str:
    lines = [
        "| detector (live ASR) | vad_wait_ms p50 / p95, human complete | misses | false ends: after a function word "
        "| after a clause |",
        "|---|---|---|---|---|",
    ]
    for name, r in report.items():
        wait, ends, n = r["vad_wait_ms"], r["false_ends"], r["pause_utterances"]
        lines.append(
            f"| {name} | {wait['p50']:.0f} / {wait['p95']:.0f} | {r['misses']} / {r['complete_utterances']} "
            f"| {ends[FUNCTION_WORD]} / {n[FUNCTION_WORD]} | {ends[CLAUSE]} / {n[CLAUSE]} |"
        )
    return "\n".join(lines)


def run_live(args: argparse.Namespace) -> dict[str, Any]:
    """Against ``--asr``, or an ASR service of its own on free ports (Smart Turn loaded)."""
    if args.asr:
        return asyncio.run(live(args.asr, args.quick))
    with tempfile.TemporaryDirectory() as logs:
        server = start_on_free_ports("asr", Path(logs) / "asr.log")
        try:
            return asyncio.run(live(server.address, args.quick))
        finally:
            server.stop()


E2E_STAGES = ("e2e_ms", "vad_wait_ms", "asr_ms", "llm_ttft_ms", "tts_ttfa_ms", "overhead_ms")


def run_e2e(args: argparse.Namespace, logs: Path) -> dict[str, Any]:
    """Held-out-like human speech, one turn each through ``voice-agent talk`` (the CLI, a process per
    turn, a new session each) on the default stack: its own on free ports, or ``--gateway``'s. The
    recorded utterances, none of which the stack's settings were tuned on but the call's, after one
    uncounted turn."""
    samples = complete_utterances(lead_ms=300, tail_ms=1500)
    samples = samples[:1] if args.quick else samples
    env = {**os.environ, "VOICE_STATE_DIR": str(logs)}  # nothing of a stack on the default ports is read
    rows = []
    with stack_from_args(args, logs) as stack:
        for index, sample in enumerate([samples[0], *samples]):
            wav, reply = logs / "turn.wav", logs / "reply.wav"
            save(sample, wav)
            command = [sys.executable, "-m", "voice_ops.cli", "talk", "--json", "--wav", str(wav), "--out", str(reply)]
            done = subprocess.run(
                [*command, "--gateway", stack.gateway], capture_output=True, text=True, timeout=120, env=env
            )
            payload = json.loads(done.stdout) if done.stdout.strip() else {"errors": [done.stderr[-500:]]}
            row = {"text": sample.text, "speaker": sample.speaker, "counted": index > 0, **payload}
            rows.append(row)
            progress(f"  talk {index}: {payload.get('metrics', {}).get('e2e_ms')} ms, {payload.get('transcript')!r}")
        describe = stack.describe()
    counted = [r for r in rows if r["counted"]]
    report = {
        stage: summary([r["metrics"][stage] for r in counted if stage in r.get("metrics", {})]) for stage in E2E_STAGES
    }
    report["failed"] = sum(1 for r in counted if r.get("errors") or "e2e_ms" not in r.get("metrics", {}))
    return {"stack": describe, "report": report, "rows": rows}


def e2e_table(report: dict[str, Any]) -> str:
    cells = " | ".join(f"{report[s]['p50']:.0f} / {report[s]['p95']:.0f}" for s in E2E_STAGES)
    return "\n".join(
        [
            f"| `voice-agent talk`, human speech, p50 / p95 ms | {' | '.join(E2E_STAGES)} |",
            f"|---|{'---|' * len(E2E_STAGES)}",
            f"| {report['e2e_ms']['n']} turns, {report['failed']} failed | {cells} |",
        ]
    )


PARTS = ("offline", "live", "e2e")


def offline(args: argparse.Namespace) -> dict[str, Any]:
    """Every set through Silero and the endpointer in process, each detector judging every pause."""
    config = AsrConfig()
    progress("loading Silero VAD, Whisper tiny.en and Smart Turn v3.2 ...")
    vad = SileroVad()
    transcriber = WhisperTranscriber(workers=1, beam_size=config.beam_size, fit_window=True)
    transcriber.transcribe(np.zeros(ASR_SAMPLE_RATE, dtype=np.float32), "en")
    smart_turn = SmartTurn()
    smart_turn.predict(np.zeros(ASR_SAMPLE_RATE, dtype=np.float32))
    samples = build_samples(vad, args.quick)
    progress(f"{len(samples)} samples; judging each pause ...")
    judges = Judges(transcriber, smart_turn)
    rows: dict[str, list[dict[str, Any]]] = {}
    for detector in DETECTORS:
        rows[detector] = [simulate(s, lambda a, d=detector: judges.judge(d, a, DEFAULT_THRESHOLD)) for s in samples]
        progress(f"  {detector}: done")
    sweep = {}
    for threshold in THRESHOLDS:
        group = [simulate(s, lambda a, t=threshold: judges.judge("smart_turn", a, t)) for s in samples]
        sweep[str(threshold)] = {k: v for k, v in report(group).items() if k in ("false_ends", "misses", "vad_wait_ms")}
    return {
        "settings": {
            "min_silence_ms": MIN_SILENCE_MS,
            "incomplete_silence_ms": INCOMPLETE_SILENCE_MS,
            "pause_ms": PAUSE_MS,
            "speech_pad_ms": DEFAULT_SPEECH_PAD_MS,
            "onset_pad_ms": config.onset_pad_ms,
            "whisper_beam_size": config.beam_size,
            "smart_turn_threshold": DEFAULT_THRESHOLD,
        },
        "detectors": {name: report(group) for name, group in rows.items()},
        "smart_turn_thresholds": sweep,
        "utterances": rows,
    }


def main() -> None:
    parser = arg_parser(__doc__, "turn_end")
    parser.add_argument("--parts", default=",".join(PARTS), help="which parts to run, of %(default)s")
    add_stack_arguments(parser)  # --asr is the live part's ASR; --gateway the e2e part's stack
    args = parser.parse_args()
    parts = args.parts.split(",")
    if not set(parts) <= set(PARTS):
        parser.error(f"--parts: each of {', '.join(PARTS)}")
    out = results_path(args.out, "turn_end")
    results: dict[str, Any] = {**run_info(), "quick": args.quick, "parts": parts}
    if "offline" in parts:
        results |= offline(args)
    if "live" in parts:
        progress("live: the human sets through a real ASR service ...")
        results["live"] = run_live(args)
    if "e2e" in parts:
        progress("e2e: one turn each through `voice-agent talk` ...")
        with tempfile.TemporaryDirectory() as logs:
            results["e2e"] = run_e2e(args, Path(logs))
    write_results(out, results)
    if "detectors" in results:
        print(table(results["detectors"]))
        sweep = results["smart_turn_thresholds"]
        verdicts = {t: (r["false_ends"], r["misses"]) for t, r in sweep.items()}
        print("smart_turn thresholds (false ends, misses):", verdicts)
    if "live" in results:
        print(live_table(results["live"]["report"]))
    if "e2e" in results:
        print(e2e_table(results["e2e"]["report"]))


if __name__ == "__main__":
    main()
