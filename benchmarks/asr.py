"""VAD+ASR benchmark (`make bench-asr`).

Prints and writes to benchmarks/results/asr.json:
- VAD cost per 32 ms frame;
- Whisper model load time;
- p50/p95 time from the VAD's speech-end decision to the final transcript, for
  utterances of about 1, 3 and 6 s streamed in real time through the real
  service, with the fitted encoder window (the default) and Whisper's full 30 s
  window side by side: two servers, each utterance sent to both in turn;
- real-time factor and WER of the finals;
- the bare model for reference: faster-whisper's own transcribe() on the same
  3 s utterances, in-process;
- accuracy on natural speech, where espeak misleads: normalised WER of the service's
  transcripts against faster-whisper's own transcribe() (its defaults: beam 5, the 30 s
  window) on recorded human speech (voice_ops.samples.recorded_turns), on the project's
  TTS voices at several rates with real pauses (benchmarks.common.natural_speech) and on
  espeak; the service as it is, and with each choice that issue 14 changed undone
  (onset_pad_ms 100, beam 1, Whisper's full window), side by side: one server per variant.

A benchmark, not a test: it asserts nothing; these machines are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from benchmarks.common import natural_speech, progress
from benchmarks.stats import percentile, run_info, summary, write_results
from services.asr.models import embedded_whisper_dir
from services.asr.transcriber import WhisperTranscriber
from services.asr.vad import FRAME_SAMPLES, SileroVad
from voice_agent.audio import pcm16_to_float
from voice_agent.client.asr import recognize
from voice_ops.samples import SpokenSample, recorded_turns, speak, word_error_rate
from voice_ops.stack import start_on_free_ports

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

RESULTS = Path(__file__).resolve().parent / "results" / "asr.json"

UTTERANCES = {
    "1s": ["Thank you", "How do I sound", "Yes that helps", "Let me try again", "Okay got it", "Sounds good"],
    "3s": [
        "I would like to practice my presentation for tomorrow",
        "Please give me honest feedback on my opening line",
        "I have a job interview next week and I feel nervous",
        "Can we practice small talk before the conference",
        "My team missed the deadline and I have to explain",
        "Tell me one thing I did well in that answer",
    ],
    "6s": [
        "Could you help me prepare for a difficult conversation with my manager about my workload this month",
        "I think my voice sounds too quiet when I get nervous in meetings with senior people from other teams",
        "What should I say when the interviewer asks me about my biggest weakness and how I deal with it",
        "I want to sound more confident when I present the quarterly results to the whole company next Friday",
        "Sometimes I talk too fast when I am excited and people tell me they cannot follow what I am saying",
        "Please listen to my pitch for the new product and tell me which part was the least convincing to you",
    ],
}


def bench_vad(samples: list[SpokenSample]) -> dict[str, float]:
    vad = SileroVad()
    audio = np.concatenate([pcm16_to_float(s.audio.data) for s in samples])
    frames = [audio[i : i + FRAME_SAMPLES] for i in range(0, len(audio) - FRAME_SAMPLES + 1, FRAME_SAMPLES)]
    stream = vad.stream()
    costs = []
    for frame in frames:
        started = time.perf_counter()
        stream.probability(frame)
        costs.append((time.perf_counter() - started) * 1000)
    return {
        "frames": len(frames),
        "mean_ms": round(statistics.fmean(costs), 4),
        **{k: round(v, 4) for k, v in (("p50_ms", percentile(costs, 50)), ("p95_ms", percentile(costs, 95)))},
    }


def bench_load(repeats: int) -> dict[str, float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        WhisperTranscriber()
        times.append((time.perf_counter() - started) * 1000)
    return {"first_ms": round(times[0], 1), "median_ms": round(statistics.median(times), 1), "n": repeats}


def bench_bare_model(samples: list[SpokenSample]) -> dict[str, object]:
    """faster-whisper's transcribe() as MODELS.md measured it, against our transcriber, in-process."""
    from faster_whisper import WhisperModel

    bare = WhisperModel(str(embedded_whisper_dir()), device="cpu", compute_type="int8", cpu_threads=os.cpu_count())
    ours = {"fit": WhisperTranscriber(fit_window=True), "full": WhisperTranscriber(fit_window=False)}
    times: dict[str, list[float]] = {"faster_whisper_transcribe": [], "fit": [], "full": []}
    texts: dict[str, list[str]] = {k: [] for k in times}
    for sample in samples:
        audio = pcm16_to_float(sample.audio.data)
        started = time.perf_counter()
        segments, _ = bare.transcribe(
            audio,
            language="en",
            beam_size=1,
            vad_filter=True,
            without_timestamps=True,
            condition_on_previous_text=False,
        )
        texts["faster_whisper_transcribe"].append(" ".join(s.text for s in segments))
        times["faster_whisper_transcribe"].append((time.perf_counter() - started) * 1000)
        for mode, transcriber in ours.items():
            result = transcriber.transcribe(audio, "en")
            texts[mode].append(result.text)
            times[mode].append(result.inference_ms)
    refs = [s.text for s in samples]
    return {mode: {**summary(times[mode]), "wer": round(word_error_rate(refs, texts[mode]), 4)} for mode in times}


async def bench_service(samples: dict[str, list[SpokenSample]], log_dir: Path) -> dict[str, object]:
    servers = {
        mode: start_on_free_ports("asr", log_dir / f"asr-{mode}.log", "--encoder-window", mode)
        for mode in ("fit", "full")
    }
    latency: dict[str, dict[str, list[float]]] = {m: {k: [] for k in samples} for m in servers}
    rtf: dict[str, dict[str, list[float]]] = {m: {k: [] for k in samples} for m in servers}
    texts: dict[str, dict[str, list[str]]] = {m: {k: [] for k in samples} for m in servers}
    try:
        channels = {m: grpc.aio.insecure_channel(s.address) for m, s in servers.items()}
        for length, group in samples.items():
            for sample in group:
                for mode, channel in channels.items():  # side by side: the same utterance to each in turn
                    result = await recognize(channel, sample.audio, realtime=True)
                    finals = result.finals
                    texts[mode][length].append(" ".join(f.text for f in finals))
                    for final in finals:
                        latency[mode][length].append(final.processing_ms)
                        rtf[mode][length].append(final.inference_ms / max(1, final.end_ms - final.start_ms))
                print(f"  {length}: {sample.text!r} done", file=sys.stderr, flush=True)
        for channel in channels.values():
            await channel.close()
    finally:
        for server in servers.values():
            server.stop()
    report: dict[str, object] = {}
    for mode in servers:
        report[mode] = {
            length: {
                "speech_end_to_final_ms": summary(latency[mode][length]),
                "rtf": round(statistics.fmean(rtf[mode][length]), 4),
                "wer": round(word_error_rate([s.text for s in group], texts[mode][length]), 4),
            }
            for length, group in samples.items()
        }
    report["fit_over_full_p50"] = {
        length: round(
            report["fit"][length]["speech_end_to_final_ms"]["p50"]  # type: ignore[index]
            / report["full"][length]["speech_end_to_final_ms"]["p50"],  # type: ignore[index]
            3,
        )
        for length in samples
    }
    return report


# The service's variants for the accuracy comparison: each undoes one of issue 14's choices.
ACCURACY_VARIANTS = {
    "service": [],  # the defaults: onset_pad_ms 300, beam 5, the fitted window
    "onset_pad_100": ["--onset-pad-ms", "100"],
    "beam_1": ["--beam-size", "1"],
    "onset_pad_100_beam_1": ["--onset-pad-ms", "100", "--beam-size", "1"],  # as the service was before
    "full_window": ["--encoder-window", "full"],
}
NATURAL_VOICES = {"piper": ("en_US-joe-medium",), "kokoro": ("jm_kumo", "jf_alpha")}


async def accuracy_sets(log_dir: Path, espeak: list[SpokenSample]) -> dict[str, list[SpokenSample]]:
    """Recorded human speech, natural TTS speech (a TTS server per engine makes it) and espeak."""
    servers = [start_on_free_ports("tts", log_dir / f"tts-{e}.log", "--engine", e) for e in NATURAL_VOICES]
    try:
        voices = [(s.address, v) for s, e in zip(servers, NATURAL_VOICES, strict=True) for v in NATURAL_VOICES[e]]
        natural = await natural_speech(voices)
    finally:
        for server in servers:
            server.stop()
    return {"recorded_human": recorded_turns(), "natural_tts": natural, "espeak": espeak}


async def bench_accuracy(sets: dict[str, list[SpokenSample]], log_dir: Path) -> dict[str, object]:
    """Normalised WER per set: each service variant (a server each, every utterance to each in turn) and
    faster-whisper's own transcribe() with its defaults and greedy, in-process."""
    from faster_whisper import WhisperModel

    servers = {
        name: start_on_free_ports("asr", log_dir / f"asr-{name}.log", *args) for name, args in ACCURACY_VARIANTS.items()
    }
    bare = WhisperModel(str(embedded_whisper_dir()), device="cpu", compute_type="int8", cpu_threads=os.cpu_count())
    names = [*servers, "transcribe_beam_5", "transcribe_beam_1"]
    texts: dict[str, dict[str, list[str]]] = {n: {k: [] for k in sets} for n in names}
    times: dict[str, list[float]] = {n: [] for n in names}
    try:
        channels = {n: grpc.aio.insecure_channel(s.address) for n, s in servers.items()}
        for kind, samples in sets.items():
            progress(f"  {kind}: {len(samples)} utterances")
            for sample in samples:
                for name, channel in channels.items():
                    # A second of silence ends an utterance: the pauses inside these sentences do not split
                    # them, so that transcription is compared, not where the end of turn falls.
                    result = await recognize(channel, sample.audio, realtime=False, min_silence_ms=1000)
                    texts[name][kind].append(result.text)
                    times[name] += [final.inference_ms for final in result.finals]
                audio = pcm16_to_float(sample.audio.data)
                for beam in (5, 1):
                    started = time.perf_counter()
                    segments, _ = bare.transcribe(audio, language="en", beam_size=beam)
                    texts[f"transcribe_beam_{beam}"][kind].append(" ".join(s.text.strip() for s in segments))
                    times[f"transcribe_beam_{beam}"].append((time.perf_counter() - started) * 1000)
        for channel in channels.values():
            await channel.close()
    finally:
        for server in servers.values():
            server.stop()
    refs = {kind: [s.text for s in samples] for kind, samples in sets.items()}
    return {
        name: {
            "wer": {kind: round(word_error_rate(refs[kind], texts[name][kind]), 4) for kind in sets},
            "inference_ms": summary(times[name]),
            "transcripts": texts[name],
        }
        for name in names
    } | {"references": refs, "utterances": {kind: len(samples) for kind, samples in sets.items()}}


def accuracy_table(report: dict[str, Any]) -> str:
    kinds = list(report["utterances"])
    lines = ["| | " + " | ".join(f"WER {k} ({report['utterances'][k]})" for k in kinds) + " | inference p50 ms |"]
    lines.append("|" + "---|" * (len(kinds) + 2))
    for name, row in report.items():
        if name in ("references", "utterances"):
            continue
        cells = " | ".join(f"{100 * row['wer'][k]:.1f} %" for k in kinds)
        lines.append(f"| {name} | {cells} | {row['inference_ms']['p50']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON results file (default {RESULTS})")
    parser.add_argument("--load-repeats", type=int, default=3)
    parser.add_argument("--accuracy-only", action="store_true", help="only the accuracy comparison")
    args = parser.parse_args()

    print("making the test speech with espeak-ng ...", file=sys.stderr)
    samples = {k: [speak(t, lead_ms=500, tail_ms=1000) for t in texts] for k, texts in UTTERANCES.items()}
    durations = {k: round(statistics.fmean(s.speech_end_ms - s.speech_start_ms for s in v)) for k, v in samples.items()}
    results: dict[str, object] = {
        **run_info(),
        "utterance_mean_speech_ms": durations,
    }
    with tempfile.TemporaryDirectory() as logs:
        if not args.accuracy_only:
            print("VAD cost per frame ...", file=sys.stderr)
            results["vad_per_frame"] = bench_vad(samples["6s"])
            print("model load ...", file=sys.stderr)
            results["model_load"] = bench_load(args.load_repeats)
            print("bare model vs ours, in-process, 3 s utterances ...", file=sys.stderr)
            results["model_only_3s"] = bench_bare_model(samples["3s"])
            print("the service, real-time streams, fit and full windows side by side ...", file=sys.stderr)
            results["service"] = asyncio.run(bench_service(samples, Path(logs)))
        print("accuracy: natural speech from the TTS voices, recorded human speech, espeak ...", file=sys.stderr)
        espeak = [s for group in samples.values() for s in group]
        sets = asyncio.run(accuracy_sets(Path(logs), espeak))
        results["accuracy"] = asyncio.run(bench_accuracy(sets, Path(logs)))
    write_results(args.out, results)
    print("\nnormalised WER (voice_ops.samples.normalize), each set scored as a whole:\n")
    print(accuracy_table(results["accuracy"]))  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
