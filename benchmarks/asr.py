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
  3 s utterances, in-process.

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

import grpc
import numpy as np

from benchmarks.stats import percentile, run_info, summary, write_results
from services.asr.models import embedded_whisper_dir
from services.asr.transcriber import WhisperTranscriber
from services.asr.vad import FRAME_SAMPLES, SileroVad
from voice_agent.audio import pcm16_to_float
from voice_agent.client.asr import recognize
from voice_agent.samples import SpokenSample, speak, word_error_rate
from voice_agent.stack import start_on_free_ports

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON results file (default {RESULTS})")
    parser.add_argument("--load-repeats", type=int, default=3)
    args = parser.parse_args()

    print("making the test speech with espeak-ng ...", file=sys.stderr)
    samples = {k: [speak(t, lead_ms=500, tail_ms=1000) for t in texts] for k, texts in UTTERANCES.items()}
    durations = {k: round(statistics.fmean(s.speech_end_ms - s.speech_start_ms for s in v)) for k, v in samples.items()}
    results: dict[str, object] = {
        **run_info(),
        "utterance_mean_speech_ms": durations,
    }
    print("VAD cost per frame ...", file=sys.stderr)
    results["vad_per_frame"] = bench_vad(samples["6s"])
    print("model load ...", file=sys.stderr)
    results["model_load"] = bench_load(args.load_repeats)
    print("bare model vs ours, in-process, 3 s utterances ...", file=sys.stderr)
    results["model_only_3s"] = bench_bare_model(samples["3s"])
    print("the service, real-time streams, fit and full windows side by side ...", file=sys.stderr)
    with tempfile.TemporaryDirectory() as logs:
        results["service"] = asyncio.run(bench_service(samples, Path(logs)))
    write_results(args.out, results)


if __name__ == "__main__":
    main()
