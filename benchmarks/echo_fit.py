"""The gateway's echo path fit, offline (issue 24): what it leaves of the agent's echo, and of the user's speech
over it, on the turn-taking benchmark's realistic echo paths (`python -m benchmarks.echo_fit`, a few seconds).

In process, no stack. The agent's reply is Piper (the agent's voice, noise scales at 0: the same audio every
run), sent in 200 ms chunks that the client plays from 0.5 s into the microphone's audio; the microphone hears
it through each of voice_ops.echo_paths.realistic_paths (a loudspeaker's clip and band, a room, a phone's
jitter buffer on half of them), as benchmarks/turns.py's echo sets do. ``EchoTimeline.over_echo`` removes the
echo from a window as the gateway's check does (the utterance and the 1.5 s before it) and reports the level
of what is left: the residual's power over the microphone's, in the window's loudest second (dB).

- echo alone: three 2 s utterances per path (1.5, 3 and 4.5 s into the reply); the gateway takes more than
  gateway.echo.heard.OVER_ECHO_LEVEL_DB as the user speaking over the echo, so lower is better.
- over the echo: "yeah", "okay, sure" and a sentence (espeak-ng, at the agent's speech level) said 2 s into
  the reply; "-" where the echo was not found under the user's speech (nothing removed). Higher is better.
- the check's cost: wall time of one check of a 5 s utterance, on this machine.

The level of each path does not change these ratios (the paths are calibrated; no noise is added), so one
level is run. Writes benchmarks/results/echo_fit.json. A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from benchmarks.common import arg_parser, progress, results_path
from benchmarks.stats import run_info, write_results
from gateway.echo.heard import OVER_ECHO_LEVEL_DB
from gateway.echo.path import EchoTimeline
from services.tts.models import embedded_piper_model
from voice_agent.audio import ASR_SAMPLE_RATE, float_to_pcm16, pcm16_to_float, resample
from voice_ops.echo_paths import FRAME_MS, EchoPath, EchoRenderer, at_speech_level, realistic_paths
from voice_ops.turn_sets import utterance

RATE = ASR_SAMPLE_RATE
LEAD_S = 0.5  # where the client starts playing the reply, into the microphone's audio
CHUNK_S = 0.2  # the reply's chunks as the gateway sends them
REPLY = (
    "Open with a short story that shows why your topic matters to the audience. That is normal. Take two slow breaths."
)
ECHO_WINDOWS_S = (1.5, 3.0, 4.5)  # into the reply: the echo alone's utterances, 2 s each
OVER_ECHO = ("yeah", "okay, sure", "hold on, I think the problem is my manager")
OVER_AT_S = 2.0


def agent_reply() -> tuple[np.ndarray, int]:
    from piper import PiperVoice, SynthesisConfig

    model = embedded_piper_model()
    voice = PiperVoice.load(model, f"{model}.json")
    chunks = voice.synthesize(REPLY, SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0))
    return np.concatenate([chunk.audio_float_array for chunk in chunks]), voice.config.sample_rate


def microphone(reply: np.ndarray, path: EchoPath) -> np.ndarray:
    """The reply's echo through ``path``, chunk by chunk and frame by frame, as benchmarks/turns.py renders it."""
    renderer = EchoRenderer(path, RATE)
    mic = np.zeros(len(reply) + 3 * RATE, np.float32)
    chunk, frame = int(CHUNK_S * RATE), RATE * FRAME_MS // 1000
    for offset in range(0, len(reply), chunk):
        echo = renderer.shape(reply[offset : offset + chunk])
        frames = max(1, -(-min(chunk, len(reply) - offset) // frame))
        for index, delay in enumerate(renderer.delays(frames)):
            part = echo[index * frame :] if index == frames - 1 else echo[index * frame : (index + 1) * frame]
            start = int(LEAD_S * RATE) + offset + index * frame + delay
            end = min(len(mic), start + len(part))
            mic[start:end] += part[: end - start]
    return mic


def left_db(reply: tuple[np.ndarray, int], mic: np.ndarray, start_s: float, end_s: float) -> float | None:
    """What the gateway's check leaves of the microphone from ``start_s`` to ``end_s`` (None: no echo found)."""
    audio, rate = reply
    timeline = EchoTimeline(RATE)
    pcm = float_to_pcm16(audio)
    step = int(rate * CHUNK_S) * 2
    for offset in range(0, len(pcm), step):
        timeline.play(pcm[offset : offset + step], rate, int(LEAD_S * RATE) + round(offset // 2 * RATE / rate))
    heard = float_to_pcm16(mic)
    for offset in range(0, len(heard), RATE // 50 * 2):
        timeline.heard(heard[offset : offset + RATE // 50 * 2])
    removed = timeline.over_echo(int(start_s * RATE), int(end_s * RATE))
    return None if removed is None else round(removed.level_db, 1)


def _row(values: list[float | None]) -> str:
    return " ".join("    -" if value is None else f"{value:5.1f}" for value in values)


def main() -> None:
    parser = arg_parser(__doc__, "echo_fit")
    parser.add_argument("--paths", type=int, default=8, help="realistic paths (default 8; --quick 4)")
    args = parser.parse_args()
    count = 4 if args.quick else args.paths
    out = results_path(args.out, "echo_fit")
    progress("the agent's reply with Piper ...")
    audio, rate = agent_reply()
    reply = resample(audio, rate, RATE)
    paths = realistic_paths(-25.0, count)
    mics = [microphone(reply, path) for path in paths]

    print(f"\necho alone: level left (dB) in 2 s utterances {ECHO_WINDOWS_S} s into the reply; lower is better")
    alone: dict[str, list[float | None]] = {}
    for path, mic in zip(paths, mics, strict=True):
        at = [LEAD_S + s for s in ECHO_WINDOWS_S]
        alone[path.describe()] = [left_db((audio, rate), mic, start, start + 2.0) for start in at]
        print(f"  {path.describe():<48} {_row(alone[path.describe()])}")
    echo_levels = [value for values in alone.values() for value in values if value is not None]

    print(f"\nover the echo: level left (dB), said {OVER_AT_S} s into the reply; higher is better")
    over: dict[str, list[float | None]] = {}
    for text in OVER_ECHO:
        speech = at_speech_level(pcm16_to_float(utterance(text, 2).data))
        at = int((LEAD_S + OVER_AT_S) * RATE)
        levels = []
        for mic in mics:
            said = mic.copy()
            said[at : at + len(speech)] += speech[: len(said) - at]
            levels.append(left_db((audio, rate), said, at / RATE - 0.1, (at + len(speech)) / RATE + 0.2))
        over[text] = levels
        print(f"  {text!r:<48} {_row(levels)}")
    user_levels = [value for values in over.values() for value in values if value is not None]

    started = time.perf_counter()
    for _ in range(5):
        left_db((audio, rate), mics[1], LEAD_S + 1.5, LEAD_S + 6.5)
    check_ms = (time.perf_counter() - started) / 5 * 1000

    summary = {
        "echo_alone_db": {"max": max(echo_levels), "mean": round(statistics.mean(echo_levels), 1)},
        "over_echo_db": {"min": min(user_levels), "mean": round(statistics.mean(user_levels), 1)},
        "over_echo_level_db": OVER_ECHO_LEVEL_DB,
        "check_ms_5s_utterance": round(check_ms, 1),
    }
    print(
        f"\necho alone: max {summary['echo_alone_db']['max']} dB, mean {summary['echo_alone_db']['mean']} dB; "
        f"speech over it: min {summary['over_echo_db']['min']} dB; the gateway's line: {OVER_ECHO_LEVEL_DB} dB; "
        f"a check of a 5 s utterance: {check_ms:.0f} ms"
    )
    write_results(
        out,
        {"machine": run_info(), "reply": REPLY, "echo_alone": alone, "over_echo": over, "summary": summary},
    )


if __name__ == "__main__":
    main()
