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

Sets:

- the pause set: PAUSE_SET's sentences spoken by espeak-ng with a 300, 450 and
  600 ms pause after a word that cannot end them; a false end of turn is an end
  of the utterance before its last part began (or more than one end);
- complete sentences followed by silence: the recorded human turns of the call
  in the pyannote-audio wheel, and espeak's COMPLETE_QUESTIONS and QUESTIONS; a
  miss is the last pause judged incomplete, so the end of turn waits 700 ms
  instead of 150. ``vad_wait_ms`` is the endpointer's wait after the speech end,
  as SpeechEnded reports it.

Prints a table and writes benchmarks/results/turn_end.json. ``make bench-turn-end``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchmarks.common import QUESTIONS, arg_parser, progress, results_path
from benchmarks.stats import run_info, summary, write_results
from services.asr.config import AsrConfig
from services.asr.protocol import DEFAULT_SPEECH_PAD_MS
from services.asr.smart_turn import DEFAULT_THRESHOLD, SmartTurn
from services.asr.transcriber import WhisperTranscriber
from services.asr.turn_end import reads_complete
from services.asr.vad import FRAME_SAMPLES, Endpointer, SileroVad, SpeechEnd, SpeechPause
from voice_agent.audio import ASR_SAMPLE_RATE, StreamResampler, pcm16_to_float
from voice_ops.samples import COMPLETE_QUESTIONS, PAUSE_SET, SpokenSample, recorded_turns, speak, speak_with_pauses

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
        events = endpointer.push(probability, frame_end)
        for arrives, pause, verdict in [p for p in pending if p[0] <= frame_end]:
            pending.remove((arrives, pause, verdict))
            end = endpointer.judge(pause, verdict.complete)
            if end is not None:
                events.append(end)
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
        row["miss"] = not (last and last[-1].complete)
    return row


def build_samples(vad: SileroVad, quick: bool) -> list[Sample]:
    sentences = PAUSE_SET[:2] if quick else PAUSE_SET
    samples = []
    for pause_ms in PAUSE_LENGTHS_MS:
        for parts in sentences:
            spoken = speak_with_pauses(parts, pause_ms=pause_ms, lead_ms=300, tail_ms=1500)
            samples.append(_sample(f"pause_{pause_ms}", spoken, spoken.last_part_start_ms * MS))
    human = recorded_turns(tail_ms=1500)
    espeak = [speak(text, lead_ms=300, tail_ms=1500) for text in (*COMPLETE_QUESTIONS, *QUESTIONS)]
    for kind, group in (("recorded_human", human), ("espeak", espeak)):
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


def report(rows: list[dict[str, Any]]) -> dict[str, Any]:
    pauses = [r for r in rows if "false_end_of_turn" in r]
    complete = [r for r in rows if "miss" in r]
    by_length = {
        kind: sum(r["false_end_of_turn"] for r in pauses if r["set"] == kind)
        for kind in dict.fromkeys(r["set"] for r in pauses)
    }
    misses = {
        kind: sum(r["miss"] for r in complete if r["set"] == kind) for kind in dict.fromkeys(r["set"] for r in complete)
    }
    decisions = [ms for r in rows for ms in r["decision_ms"]]
    cpu = [ms for r in rows for ms in r["decision_cpu_ms"]]
    return {
        "false_ends": sum(by_length.values()),
        "pause_utterances": len(pauses),
        "false_ends_by_pause": by_length,
        "misses": sum(misses.values()),
        "complete_utterances": len(complete),
        "misses_by_set": misses,
        "vad_wait_ms": summary([r["vad_wait_ms"] for r in complete if r["vad_wait_ms"] is not None]),
        "vad_wait_ms_by_set": {
            kind: summary([r["vad_wait_ms"] for r in complete if r["set"] == kind and r["vad_wait_ms"] is not None])
            for kind in misses
        },
        "decision_ms": summary(decisions),
        "decision_cpu_ms": summary(cpu),
    }


def table(detectors: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| detector | false ends, pause set | misses, complete sentences | vad_wait_ms p50 / p95, complete "
        "| ms per decision p50 (CPU ms) |",
        "|---|---|---|---|---|",
    ]
    for name, r in detectors.items():
        lines.append(
            f"| {name} | {r['false_ends']} / {r['pause_utterances']} | {r['misses']} / {r['complete_utterances']} "
            f"| {r['vad_wait_ms']['p50']:.0f} / {r['vad_wait_ms']['p95']:.0f} "
            f"| {r['decision_ms']['p50']:.0f} ({r['decision_cpu_ms']['p50']:.0f}) |"
        )
    return "\n".join(lines)


def main() -> None:
    args = arg_parser(__doc__, "turn_end").parse_args()
    out = results_path(args.out, "turn_end")
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
    detectors = {name: report(group) for name, group in rows.items()}
    sweep = {}
    for threshold in THRESHOLDS:
        group = [simulate(s, lambda a, t=threshold: judges.judge("smart_turn", a, t)) for s in samples]
        sweep[str(threshold)] = {k: v for k, v in report(group).items() if k in ("false_ends", "misses", "vad_wait_ms")}
    results = {
        **run_info(),
        "quick": args.quick,
        "settings": {
            "min_silence_ms": MIN_SILENCE_MS,
            "incomplete_silence_ms": INCOMPLETE_SILENCE_MS,
            "pause_ms": PAUSE_MS,
            "speech_pad_ms": DEFAULT_SPEECH_PAD_MS,
            "onset_pad_ms": config.onset_pad_ms,
            "whisper_beam_size": config.beam_size,
            "smart_turn_threshold": DEFAULT_THRESHOLD,
        },
        "detectors": detectors,
        "smart_turn_thresholds": sweep,
        "utterances": rows,
    }
    write_results(out, results)
    print(table(detectors))
    print("smart_turn thresholds:", {t: (r["false_ends"], r["misses"]) for t, r in sweep.items()})


if __name__ == "__main__":
    main()
