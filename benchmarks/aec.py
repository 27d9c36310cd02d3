"""Server-side echo cancellation, offline (`make bench-aec`, issue 17): WebRTC AEC3 (livekit) against
speexdsp's echo canceller and no cancellation, on the agent's own voice coming back into the microphone.

In process, no stack. The agent's replies are Piper (the agent's voice, 22.05 kHz, resampled to 16 kHz; its
noise scales at 0, so that every run has the same audio); the microphone hears each reply `delay` late
(50/150/300 ms), `gain` down (-6/-12/-20 dB), dry or through sox's reverb (voice_ops/turn_sets.py
room_impulse), over white noise at -60 dBFS. The canceller's reference is the reply as the gateway sent it,
placed where the client starts playing it: the echo path's delay is the canceller's to find ("hint" rows are
told it). Each case is a fresh canceller (the first reply of a session: the cold, worst case) unless "warm".

- echo: the echo alone. ERLE (mic power / output power, over where the echo is) in its first 500 ms, from
  500 ms to 1.5 s, and after; speech starts of the repo's VAD endpointer (Silero, threshold 0.5, the fast
  mode's 150 ms silence) on the output; the words the ASR pipeline (each VAD utterance with the service's
  300 ms onset pad, Whisper tiny.en, beam 5) transcribes from it, and the words of the whole output
  transcribed at once (stricter: no VAD gate).
- double talk: the same echo with an interruption ("wait", "stop talking please", ...; espeak voices, not
  the agent's) 1.5 s into the reply: word recall of the intent in what the pipeline transcribes, and the
  other words transcribed (echo that leaked into the user's turn).
- early interruption: the same 0.3 s into the reply, on a fresh canceller ("cold": it has not converged yet)
  and on one that heard another reply (and its echo) 1 s before ("warm": as a session's canceller is from
  its second reply on).
- near end only: the interruption with the agent silent (reference all zeros): what the canceller does to a
  plain user turn.
- CPU: thread CPU per second of audio, one session on one thread; added latency (frames, buffering).

The speexdsp rows need speexdsp 0.1.1, built from source (`apt-get install libspeexdsp-dev swig`, then
`pip install speexdsp==0.1.1`): it is not a project dependency, and without it those rows are skipped.
Writes benchmarks/results/aec.json. A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.common import arg_parser, progress, results_path
from benchmarks.stats import run_info, write_results
from gateway.latency import MODE_SILENCE_MS
from services.asr.config import AsrConfig
from services.asr.protocol import DEFAULT_SPEECH_PAD_MS, DEFAULT_VAD_THRESHOLD
from services.asr.transcriber import WhisperTranscriber
from services.asr.vad import FRAME_SAMPLES, Endpointer, SileroVad, SpeechEnd
from services.tts.models import embedded_piper_model
from voice_agent.audio import ASR_SAMPLE_RATE, float_to_pcm16, pcm16_to_float, resample
from voice_agent.contract import DEFAULT_ONSET_PAD_MS
from voice_ops.samples import normalize, word_error_rate
from voice_ops.turn_sets import room_impulse, utterance

RATE = ASR_SAMPLE_RATE
FRAME = RATE // 100  # 10 ms, the frame both cancellers work on
REPLIES = (
    "Feeling nervous before an interview is normal, and it means you care about doing well.",
    "Prepare three short stories about your work, and practise them out loud so they sound natural.",
    "When they ask about your weakness, pick a real one and explain what you are doing to improve it.",
    "Open your presentation with a question, then tell the audience what they will take away.",
    "Speak a little slower than feels natural, and pause after each important point.",
)
INTERRUPTIONS = ("wait", "stop talking please", "hold on", "what do you mean?", "no, that's wrong")
DELAYS_MS = (50, 150, 300)
GAINS_DB = (-6, -12, -20)
QUICK_CONDITIONS = ((50, -6, False), (150, -12, True), (300, -20, False), (300, -6, True))
LEAD_S = 0.5  # silence before the client starts playing the reply
TAIL_S = 1.0  # after the echo ends
INTERRUPT_AT_S = 1.5  # after the reply starts playing
EARLY_AT_S = 0.3  # an early interruption: before a fresh canceller has converged
WARM_GAP_S = 1.0  # between the warm case's first reply and the measured one
NOISE_DBFS = -60.0
USER_DBFS = -20.0  # the interruption's RMS level: the replies' (Piper) is about -20.5 dBFS
SPEEX_FILTER = 4096  # 256 ms of taps (speexdsp's default 2048 is 128 ms); longer converges slower
REPLY_CHUNK_S = 0.2  # agent audio handed to the component in chunks of this much
MIC_CHUNK_MS = 20  # the client's microphone chunks
VAD_MIN_SILENCE_MS = MODE_SILENCE_MS["fast"]  # the gateway's fast latency mode
ONSET_PAD_MS = DEFAULT_ONSET_PAD_MS  # the ASR's
BEAM_SIZE = AsrConfig().beam_size  # the ASR's default


@dataclass(frozen=True)
class Case:
    reply: int  # index into REPLIES
    delay_ms: int
    gain_db: float
    reverb: bool
    interruption: str | None = None
    agent: bool = True  # False: the near-end-only case (no echo, reference zeros)
    interrupt_at_s: float = INTERRUPT_AT_S
    warm: bool = False  # another reply (and its echo) first, WARM_GAP_S before this one: a canceller mid-session

    @property
    def name(self) -> str:
        if not self.agent:
            return f"near-end r{self.reply}"
        name = f"r{self.reply} {self.delay_ms}ms {self.gain_db:+g}dB{' reverb' if self.reverb else ''}"
        if self.interruption is not None:
            name += f" @{self.interrupt_at_s:g}s"
        return name + (" warm" if self.warm else "")


@dataclass
class Material:
    """One case's signals at 16 kHz, same length: what the canceller gets, and what the metrics need."""

    mic: np.ndarray
    reference: np.ndarray  # the replies where the client starts playing them (no echo path delay)
    plays: list[tuple[np.ndarray, int]]  # (the reply as Piper made it, where it starts): for the component row
    echo_from: int  # where the echo starts in the mic
    echo_to: int
    user: tuple[int, int] | None  # where the interruption is


class Canceller:
    """One session's canceller, in 10 ms frames of int16 (near, far) -> cleaned near."""

    def process(self, near: bytes, far: bytes) -> bytes:
        raise NotImplementedError


class NoCancellation(Canceller):
    def process(self, near: bytes, far: bytes) -> bytes:
        return near


class Aec3(Canceller):
    def __init__(self, delay_hint_ms: int | None = None) -> None:
        from livekit import rtc

        self._rtc = rtc
        self._apm = rtc.AudioProcessingModule(echo_cancellation=True)
        self._hint = delay_hint_ms

    def process(self, near: bytes, far: bytes) -> bytes:
        self._apm.process_reverse_stream(self._rtc.AudioFrame(bytearray(far), RATE, 1, FRAME))
        if self._hint is not None:
            self._apm.set_stream_delay_ms(self._hint)
        frame = self._rtc.AudioFrame(bytearray(near), RATE, 1, FRAME)
        self._apm.process_stream(frame)
        return bytes(frame._data)


class Speex(Canceller):
    """speexdsp's MDF echo canceller; with a hint, the reference is delayed by it here (speex has no
    delay estimation: its filter must span the whole echo path)."""

    def __init__(self, delay_hint_ms: int | None = None) -> None:
        from speexdsp import EchoCanceller

        self._ec = EchoCanceller.create(FRAME, SPEEX_FILTER, RATE)
        self._delayed = bytes((delay_hint_ms or 0) * RATE // 1000 * 2)

    def process(self, near: bytes, far: bytes) -> bytes:
        self._delayed += far
        far, self._delayed = self._delayed[: len(far)], self._delayed[len(far) :]
        return self._ec.process(near, far)


CANDIDATES: dict[str, Callable[[Case], Canceller] | None] = {
    "none": lambda case: NoCancellation(),
    "aec3": lambda case: Aec3(),
    "aec3+hint": lambda case: Aec3(case.delay_ms),
    "speex": lambda case: Speex(),
    "speex+hint": lambda case: Speex(case.delay_ms),
    "aec3 component": None,  # gateway/echo/canceller.py: 22.05 kHz plays, 20 ms mic chunks
}


def agent_replies(count: int) -> tuple[list[np.ndarray], int]:
    """The first ``count`` REPLIES in the agent's voice (Piper, en_US joe medium), and their rate. Piper samples
    noise in its model (two runs differ); its noise scales at 0 make the same audio every run."""
    from piper import PiperVoice, SynthesisConfig

    model = embedded_piper_model()
    voice = PiperVoice.load(model, f"{model}.json")
    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    replies = [np.concatenate([c.audio_float_array for c in voice.synthesize(t, config)]) for t in REPLIES[:count]]
    return replies, voice.config.sample_rate


def _rms_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-20))


def make_material(case: Case, replies: list[np.ndarray], reply_rate: int) -> Material:
    delay = case.delay_ms * RATE // 1000
    gain = np.float32(10 ** (case.gain_db / 20))
    order = [(case.reply + 1) % len(replies), case.reply] if case.warm else [case.reply]
    plays: list[tuple[np.ndarray, int]] = []
    start = int(LEAD_S * RATE)
    for index in order:
        plays.append((replies[index], start))
        start += len(resample(replies[index], reply_rate, RATE)) + int(WARM_GAP_S * RATE)
    start = plays[-1][1]  # the measured reply's
    last_echo_end = 0
    pieces = []
    for reply_22k, at in plays:
        reply = resample(reply_22k, reply_rate, RATE)
        echo = reply * gain
        if case.reverb:
            echo = np.convolve(echo, room_impulse(RATE)).astype(np.float32)
        pieces.append((at, reply, echo))
        last_echo_end = at + delay + len(echo)
    total = last_echo_end + int(TAIL_S * RATE)
    total += -total % FRAME
    mic = np.zeros(total, np.float32)
    reference = np.zeros(total, np.float32)
    if case.agent:
        for at, reply, echo in pieces:
            mic[at + delay : at + delay + len(echo)] += echo
            reference[at : at + len(reply)] = reply
    user = None
    if case.interruption is not None:
        speech = pcm16_to_float(utterance(case.interruption, case.reply + 1).data)
        speech = speech * np.float32(10 ** ((USER_DBFS - _rms_db(speech)) / 20))
        at = start + int(case.interrupt_at_s * RATE)
        mic[at : at + len(speech)] += speech
        user = (at, at + len(speech))
    noise = np.random.default_rng(case.reply).normal(0, 10 ** (NOISE_DBFS / 20), total)
    mic += noise.astype(np.float32)
    echo_len = len(pieces[-1][2])
    return Material(mic, reference, plays if case.agent else [], start + delay, start + delay + echo_len, user)


def run_canceller(name: str, case: Case, material: Material, reply_rate: int) -> tuple[np.ndarray, float]:
    """The output, and the canceller's thread CPU seconds (creating it excluded)."""
    mic = float_to_pcm16(material.mic)
    factory = CANDIDATES[name]
    if factory is None:
        from gateway.echo.canceller import EchoCanceller

        component = EchoCanceller(RATE)
        out = []
        started = time.thread_time()
        for reply_22k, at in material.plays:  # all before the mic: the gateway sends faster than real time
            pcm = float_to_pcm16(reply_22k)
            step = int(reply_rate * REPLY_CHUNK_S) * 2
            for offset in range(0, len(pcm), step):
                component.play(pcm[offset : offset + step], reply_rate, at + offset // 2 * RATE // reply_rate)
        chunk = MIC_CHUNK_MS * RATE // 1000 * 2
        out = [component.process(mic[i : i + chunk]) for i in range(0, len(mic), chunk)]
        cpu = time.thread_time() - started
        component.close()
        return pcm16_to_float(b"".join(out)), cpu
    canceller = factory(case)
    far = float_to_pcm16(material.reference)
    step = FRAME * 2
    started = time.thread_time()
    out = [canceller.process(mic[i : i + step], far[i : i + step]) for i in range(0, len(mic), step)]
    return pcm16_to_float(b"".join(out)), time.thread_time() - started


def erle_db(mic: np.ndarray, out: np.ndarray, start: int, end: int) -> float:
    if end <= start:
        return float("nan")
    return round(_rms_db(mic[start:end]) - _rms_db(out[start:end]), 1)


class Pipeline:
    """The ASR service's path, in process: Silero VAD + the endpointer, and Whisper on each utterance."""

    def __init__(self) -> None:
        self.vad = SileroVad()
        self.whisper = WhisperTranscriber(beam_size=BEAM_SIZE, cpu_threads=1)

    def utterances(self, audio: np.ndarray) -> list[tuple[int, int]]:
        stream = self.vad.stream()
        endpointer = Endpointer(DEFAULT_VAD_THRESHOLD, VAD_MIN_SILENCE_MS, 30_000)
        spans: list[tuple[int, int]] = []
        end = 0
        for end in range(FRAME_SAMPLES, len(audio) + 1, FRAME_SAMPLES):
            for event in endpointer.push(stream.probability(audio[end - FRAME_SAMPLES : end]), end):
                if isinstance(event, SpeechEnd):
                    spans.append((event.start, event.end))
        last = endpointer.finish(end)
        if last is not None:
            spans.append((last.start, last.end))
        return spans

    def heard(self, audio: np.ndarray) -> tuple[int, str, list[tuple[int, int]]]:
        """(speech starts, the transcripts of the utterances joined, the utterances)."""
        spans = self.utterances(audio)
        texts = []
        for start, end in spans:
            piece = audio[max(0, start - ONSET_PAD_MS * RATE // 1000) : end + DEFAULT_SPEECH_PAD_MS * RATE // 1000]
            texts.append(self.whisper.transcribe(piece, "en").text)
        return len(spans), " ".join(t for t in texts if t), spans

    def words(self, audio: np.ndarray) -> str:
        return self.whisper.transcribe(audio, "en").text


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", normalize(text))


def measure(pipeline: Pipeline, name: str, case: Case, material: Material, reply_rate: int) -> dict[str, Any]:
    out, cpu_s = run_canceller(name, case, material, reply_rate)
    audio_s = len(material.mic) / RATE
    row: dict[str, Any] = {"candidate": name, "case": case.name, "cpu_ms_per_s": round(cpu_s * 1000 / audio_s, 2)}
    starts, heard, _ = pipeline.heard(out)
    row |= {"speech_starts": starts, "heard": heard}
    if case.interruption is None and case.agent:  # echo only
        a, b = material.echo_from, material.echo_to
        half, one_five = RATE // 2, RATE * 3 // 2
        row |= {
            "erle_first_500ms_db": erle_db(material.mic, out, a, a + half),
            "erle_500ms_1500ms_db": erle_db(material.mic, out, a + half, a + one_five),
            "erle_after_1500ms_db": erle_db(material.mic, out, a + one_five, b),
            "erle_all_db": erle_db(material.mic, out, a, b),
            "residual_dbfs": round(_rms_db(out[a + one_five : b]), 1),
            "words_heard": len(_words(heard)),
            "words_whole_output": len(_words(pipeline.words(out))),
        }
        return row
    assert case.interruption is not None and material.user is not None
    said = _words(case.interruption)
    got = _words(heard)
    row |= {
        "interruption": case.interruption,
        "recall": round(sum(w in got for w in said) / len(said), 2),
        "wer": round(word_error_rate(case.interruption, heard), 2),
        "other_words": len([w for w in got if w not in said]),
    }
    if not case.agent:  # what the canceller left of the user's speech
        a, b = material.user
        row["user_level_change_db"] = round(_rms_db(out[a:b]) - _rms_db(material.mic[a:b]), 2)
    return row


def added_latency_ms(pipeline_free_case: Material, name: str, case: Case, reply_rate: int) -> float:
    """The lag of the output behind the input (cross-correlation peak) on the near-end-only case."""
    out, _ = run_canceller(name, case, pipeline_free_case, reply_rate)
    mic = pipeline_free_case.mic
    window = FRAME * 10
    best = max(range(window), key=lambda lag: float(np.dot(mic[: len(mic) - lag], out[lag:])))
    return round(best * 1000 / RATE, 1)


def _mean(values: list[float]) -> float:
    values = [v for v in values if v == v]
    return round(float(np.mean(values)), 2) if values else float("nan")


def aggregate(rows: list[dict[str, Any]], latency: dict[str, float]) -> dict[str, dict[str, Any]]:
    report: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(r["candidate"] for r in rows):
        mine = [r for r in rows if r["candidate"] == name]
        echo = [r for r in mine if r["set"] == "echo"]
        talk = [r for r in mine if r["set"] == "double_talk"]
        near = [r for r in mine if r["set"] == "near_end"]
        cold = [r for r in mine if r["set"] == "early_cold"]
        warm = [r for r in mine if r["set"] == "early_warm"]
        report[name] = {
            "erle_first_500ms_db": _mean([r["erle_first_500ms_db"] for r in echo]),
            "erle_500ms_1500ms_db": _mean([r["erle_500ms_1500ms_db"] for r in echo]),
            "erle_after_1500ms_db": _mean([r["erle_after_1500ms_db"] for r in echo]),
            "erle_after_1500ms_min_db": min((r["erle_after_1500ms_db"] for r in echo), default=float("nan")),
            "echo_cases": len(echo),
            "echo_cases_vad_fired": sum(r["speech_starts"] > 0 for r in echo),
            "echo_speech_starts": sum(r["speech_starts"] for r in echo),
            "echo_words_heard": sum(r["words_heard"] for r in echo),
            "echo_cases_with_words": sum(r["words_heard"] > 0 for r in echo),
            "echo_words_whole_output": sum(r["words_whole_output"] for r in echo),
            "double_talk_cases": len(talk),
            "double_talk_recall": _mean([r["recall"] for r in talk]),
            "double_talk_all_words": sum(r["recall"] == 1.0 for r in talk),
            "double_talk_wer": _mean([r["wer"] for r in talk]),
            "double_talk_other_words": sum(r["other_words"] for r in talk),
            "early_cases": len(cold),
            "early_cold_recall": _mean([r["recall"] for r in cold]),
            "early_warm_recall": _mean([r["recall"] for r in warm]),
            "early_warm_other_words": sum(r["other_words"] for r in warm),
            "near_end_recall": _mean([r["recall"] for r in near]),
            "near_end_level_change_db": _mean([r["user_level_change_db"] for r in near]),
            "cpu_ms_per_s": _mean([r["cpu_ms_per_s"] for r in mine]),
            "added_latency_ms": latency.get(name, float("nan")),
        }
    return report


def by_condition(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per candidate, per echo condition (delay, gain, reverb; over the replies): ERLE after 1.5 s, VAD
    starts and words heard on the echo, recall on double talk."""
    table: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["set"] not in ("echo", "double_talk"):
            continue
        key = f"{row['candidate']} | {row['condition']}"
        entry = table.setdefault(key, {"erle_after_1500ms_db": [], "speech_starts": 0, "words_heard": 0, "recall": []})
        if row["set"] == "echo":
            entry["erle_after_1500ms_db"].append(row["erle_after_1500ms_db"])
            entry["speech_starts"] += row["speech_starts"]
            entry["words_heard"] += row["words_heard"]
        else:
            entry["recall"].append(row["recall"])
    for entry in table.values():
        entry["erle_after_1500ms_db"] = _mean(entry["erle_after_1500ms_db"])
        entry["recall"] = _mean(entry["recall"])
    return table


COLUMNS = (
    ("candidate", "candidate", 15),
    ("erle_first_500ms_db", "ERLE<0.5s", 9),
    ("erle_500ms_1500ms_db", "ERLE.5-1.5", 10),
    ("erle_after_1500ms_db", "ERLE>1.5s", 9),
    ("echo_cases_vad_fired", "VAD fired", 9),
    ("echo_words_heard", "words(VAD)", 10),
    ("echo_words_whole_output", "words(all)", 10),
    ("double_talk_recall", "DT recall", 9),
    ("double_talk_other_words", "DT other", 8),
    ("early_cold_recall", "early cold", 10),
    ("early_warm_recall", "early warm", 10),
    ("near_end_recall", "NE recall", 9),
    ("cpu_ms_per_s", "CPU ms/s", 8),
)


def table(report: dict[str, dict[str, Any]]) -> str:
    lines = ["  ".join(title.rjust(width) for _, title, width in COLUMNS)]
    for name, entry in report.items():
        cells = [name.rjust(COLUMNS[0][2])]
        for key, _, width in COLUMNS[1:]:
            value = entry[key]
            if key == "echo_cases_vad_fired":
                value = f"{value}/{entry['echo_cases']}"
            cells.append(str(value).rjust(width))
        lines.append("  ".join(cells))
    return "\n".join(lines)


def main() -> None:
    parser = arg_parser(__doc__, "aec")
    parser.add_argument("--replies", type=int, help=f"replies (default {len(REPLIES)}; --quick 2)")
    parser.add_argument(
        "--candidates", default=",".join(CANDIDATES), help="comma-separated, of: " + ", ".join(CANDIDATES)
    )
    args = parser.parse_args()
    names = args.candidates.split(",")
    unknown = set(names) - set(CANDIDATES)
    if unknown:
        parser.error(f"unknown candidates: {sorted(unknown)}")
    skipped = {}
    for name, module in (("speex", "speexdsp"), ("aec3", "livekit")):
        try:
            __import__(module)
        except ImportError as error:
            for gone in [n for n in names if n.startswith(name)]:
                skipped[gone] = f"{module} is not installed: {error}"
                names.remove(gone)
                progress(f"skipping {gone}: {skipped[gone]}")
    count = args.replies or (2 if args.quick else len(REPLIES))
    conditions = QUICK_CONDITIONS if args.quick else tuple(itertools.product(DELAYS_MS, GAINS_DB, (False, True)))
    out = results_path(args.out, "aec")

    progress(f"the agent's {count} replies with Piper, the interruptions with espeak-ng ...")
    replies, reply_rate = agent_replies(count)
    pipeline = Pipeline()

    cases: list[tuple[str, Case]] = []
    for reply, (delay, gain, reverb) in itertools.product(range(count), conditions):
        cases.append(("echo", Case(reply, delay, gain, reverb)))
    for number, (reply, (delay, gain, reverb)) in enumerate(itertools.product(range(count), conditions)):
        spoken = INTERRUPTIONS[number % len(INTERRUPTIONS)]
        cases.append(("double_talk", Case(reply, delay, gain, reverb, interruption=spoken)))
    # The early interruption, on a fresh canceller and on one that already heard a reply: one reply per
    # condition (the replies in turn), to keep the run short.
    for number, (delay, gain, reverb) in enumerate(conditions):
        spoken = INTERRUPTIONS[(number + 2) % len(INTERRUPTIONS)]
        for warm in (False, True):
            case = Case(number % count, delay, gain, reverb, spoken, interrupt_at_s=EARLY_AT_S, warm=warm)
            cases.append(("early_warm" if warm else "early_cold", case))
    for reply in range(count):
        cases.append(("near_end", Case(reply, 0, 0, False, interruption=INTERRUPTIONS[reply], agent=False)))

    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    for number, (set_name, case) in enumerate(cases):
        material = make_material(case, replies, reply_rate)
        for name in names:
            row = measure(pipeline, name, case, material, reply_rate)
            condition = f"{case.delay_ms}ms {case.gain_db:+g}dB{' reverb' if case.reverb else ''}"
            rows.append({"set": set_name, "condition": condition, **row})
        progress(f"  {number + 1}/{len(cases)} {set_name} {case.name} ({time.perf_counter() - started:.0f} s)")

    near_case = cases[-1][1]
    near = make_material(near_case, replies, reply_rate)
    latency = {name: added_latency_ms(near, name, near_case, reply_rate) for name in names}
    report = aggregate(rows, latency)
    results = {
        **run_info(),
        "settings": {
            "quick": args.quick,
            "replies": count,
            "conditions": [list(c) for c in conditions],
            "noise_dbfs": NOISE_DBFS,
            "user_dbfs": USER_DBFS,
            "interrupt_at_s": INTERRUPT_AT_S,
            "early_interrupt_at_s": EARLY_AT_S,
            "warm_gap_s": WARM_GAP_S,
            "speex_filter_taps": SPEEX_FILTER,
            "vad": {"threshold": DEFAULT_VAD_THRESHOLD, "min_silence_ms": VAD_MIN_SILENCE_MS},
            "asr": {"model": "tiny.en int8 (embedded)", "beam_size": BEAM_SIZE, "onset_pad_ms": ONSET_PAD_MS},
            "frame_ms": 10,
            "component": {"reply_chunk_s": REPLY_CHUNK_S, "mic_chunk_ms": MIC_CHUNK_MS},
        },
        "candidates": report,
        "skipped": skipped,
        "by_condition": by_condition(rows),
        "per_case": rows,
        "runtime_s": round(time.perf_counter() - started, 1),
    }
    write_results(out, results)
    print(table(report))


if __name__ == "__main__":
    main()
