"""The operator CLI, ``voice-agent``. With ``--json`` each command prints exactly
one JSON object on stdout; progress and logs go to stderr."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

from services.tts.config import ENGINES, TtsConfig
from voice_agent.audio import read_wav, write_wav
from voice_agent.client.asr import recognize
from voice_agent.client.talk import TurnFailed, spoken_turn
from voice_agent.client.tts import Synthesis, synthesize
from voice_agent.v1 import asr_pb2
from voice_ops import conversations, stack

# What read_wav takes; the services resample whatever rate it is.
WAV_HELP = "a WAV file at 8 to 48 kHz (44.1 and 22.05 too), 16-, 24- or 32-bit integer or float PCM, mono or stereo"


def _default_address(service: str, port: int) -> str:
    return os.environ.get(f"VOICE_{service.upper()}_ADDRESS", f"127.0.0.1:{port}")


def _emit(args: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    print(json.dumps(payload) if args.json else text)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cmd_up(args: argparse.Namespace) -> int:
    api_keys = str(Path(args.api_keys).resolve()) if args.api_keys else None
    services = stack.up(
        timeout_s=args.timeout,
        progress=_progress,
        tts_engine_name=args.tts_engine,
        api_keys_file=api_keys,
        latency_mode=args.latency_mode,
    )
    services |= stack.web_endpoints()
    configuration = stack.configuration()
    text = "\n".join(f"{name}: {address}" for name, address in services.items())
    text += "\n" + stack.describe_settings(configuration)
    _emit(args, {"services": services, "configuration": configuration}, text)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    stopped = stack.down()
    _emit(args, {"stopped": stopped}, "stopped: " + (", ".join(stopped) or "nothing was running"))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from services.asr.models import embedded_models as asr_models
    from services.llm.models import embedded_models as llm_models
    from services.tts.models import embedded_models as tts_models

    found = {}
    for name, path in {**asr_models(), **tts_models(), **llm_models()}.items():
        if not path.exists():
            raise FileNotFoundError(f"{name}: {path} is missing: run `make setup`")
        size = sum(f.stat().st_size for f in path.rglob("*")) if path.is_dir() else path.stat().st_size
        found[name] = {"path": str(path), "bytes": size}
    lines = [f"{name}: {info['path']} ({info['bytes'] / 1e6:.1f} MB)" for name, info in found.items()]
    _emit(args, {"models": found}, "\n".join(lines))
    return 0


def _describe(event: asr_pb2.RecognizeResponse) -> str:
    kind = event.WhichOneof("event")
    if kind == "speech_started":
        return f"[{event.speech_started.offset_ms / 1000:7.2f}s] speech started"
    if kind == "speech_ended":
        return f"[{event.speech_ended.offset_ms / 1000:7.2f}s] speech ended"
    transcript = getattr(event, kind)
    timing = f" ({transcript.processing_ms:.0f} ms)" if kind == "final" else ""
    return f"[{transcript.end_ms / 1000:7.2f}s] {kind}: {transcript.text}{timing}"


def cmd_transcribe(args: argparse.Namespace) -> int:
    audio = read_wav(args.file)  # at its own rate: the service resamples it
    printer = None if args.json else (lambda event: print(_describe(event), flush=True))

    async def run() -> Any:
        async with grpc.aio.insecure_channel(args.asr) as channel:
            return await recognize(channel, audio, realtime=not args.fast, on_event=printer)

    result = asyncio.run(run())
    segments = [{"text": t.text, "start_ms": t.start_ms, "end_ms": t.end_ms} for t in result.finals]
    if args.json:
        latencies = [round(t.processing_ms, 1) for t in result.finals]
        print(json.dumps({"text": result.text, "segments": segments, "final_latency_ms": latencies}))
    else:
        print(f"text: {result.text}")
    return 0


def cmd_say(args: argparse.Namespace) -> int:
    options = {"voice": args.voice or "", "engine": args.engine or "", "sample_rate_hz": args.rate}

    async def run() -> Synthesis:
        async with grpc.aio.insecure_channel(args.tts) as channel:
            return await synthesize(channel, args.text, **options)

    result = asyncio.run(run())
    audio = result.audio()
    write_wav(args.out, audio)
    ttfa = round(result.ttfa_ms, 1) if result.ttfa_ms is not None else None
    payload = {"ttfa_ms": ttfa, "audio_ms": audio.duration_ms, "sample_rate": audio.sample_rate, "out": args.out}
    _emit(args, payload, f"{args.out}: {audio.duration_ms} ms at {audio.sample_rate} Hz, first audio after {ttfa} ms")
    return 0


def cmd_talk(args: argparse.Namespace) -> int:
    audio = read_wav(args.wav)
    options: dict[str, object] = {"voice": args.voice or "", "output_sample_rate_hz": args.rate}
    if args.resume:
        options["resume_conversation_id"] = args.resume
    # The conversation is left resumable (not ended): `talk --resume ID` goes on with it.
    turn = spoken_turn(args.gateway, audio, token=args.token, tls_ca=args.tls_ca or "", keep=True, **options)
    result = asyncio.run(turn)
    reply_audio = result.reply_audio()
    write_wav(args.out, reply_audio)
    metrics = result.metrics()
    payload: dict[str, Any] = {
        "conversation_id": result.conversation_id,
        "transcript": result.transcript,
        "reply": result.reply,
        "e2e_ms": metrics.get("e2e_ms"),
        "audio_ms": reply_audio.duration_ms,
        "metrics": metrics,
        "reply_audio_ms": reply_audio.duration_ms,
        "errors": [{"code": e.code, "backend": e.backend, "message": e.message} for e in result.turn_errors],
    }
    table = "\n".join(f"  {name:>22}: {value:8.1f} ms" for name, value in metrics.items())
    text = f"you:   {result.transcript}\ncoach: {result.reply}\n{table}\nreply audio: {args.out}"
    text += f"\nconversation: {result.conversation_id} (go on with --resume {result.conversation_id})"
    _emit(args, payload, text)
    return 1 if result.turn_errors or result.answer is None else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voice-agent", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str, parent: argparse._SubParsersAction = commands) -> argparse.ArgumentParser:
        sub = parent.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        return sub

    up = command("up", "start the embedded stack in the background; return once all of it is healthy")
    up.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for health (default 300)")
    up.add_argument("--tts-engine", choices=ENGINES, help=f"TTS engine [default: VOICE_TTS_ENGINE, {TtsConfig.engine}]")
    up.add_argument(
        "--api-keys",
        metavar="FILE",
        help="turn on the gateway's static-key auth: one key per line, '#' comments (restarts the gateway)",
    )
    up.add_argument(
        "--latency-mode",
        choices=("baseline", "fast"),
        help="'fast': every latency technique on; 'baseline': all off, to compare with `talk` (restarts the gateway)"
        " [default: VOICE_GATEWAY_LATENCY_MODE, fast]",
    )
    up.set_defaults(run=cmd_up)
    command("down", "stop what `up` started").set_defaults(run=cmd_down)
    command("models", "list the embedded models (shipped in PyPI packages) and check they are there").set_defaults(
        run=cmd_models
    )
    transcribe = command("transcribe", "stream a WAV file through the ASR service, in real time by default")
    transcribe.add_argument("file", help=f"the speech: {WAV_HELP}")
    transcribe.add_argument("--fast", action="store_true", help="send the audio as fast as possible")
    transcribe.add_argument("--asr", default=_default_address("asr", 50052), help="ASR address [env VOICE_ASR_ADDRESS]")
    transcribe.set_defaults(run=cmd_transcribe)
    say = command("say", "synthesize TEXT with the TTS service into a WAV file")
    say.add_argument("text")
    say.add_argument("--out", required=True, help="WAV file to write")
    say.add_argument("--voice", help="a voice the engine has (default: its default voice)")
    say.add_argument("--engine", choices=ENGINES, help="fail unless the TTS service runs this engine")
    say.add_argument("--rate", type=int, default=0, help="output sample rate (default: the engine's own)")
    say.add_argument("--tts", default=_default_address("tts", 50053), help="TTS address [env VOICE_TTS_ADDRESS]")
    say.set_defaults(run=cmd_say)
    talk_ = command("talk", "one spoken turn through the gateway, in real time; writes the agent's reply")
    talk_.add_argument("--wav", required=True, help=f"the user's turn: {WAV_HELP}")
    talk_.add_argument("--out", required=True, help="WAV file for the agent's reply")
    talk_.add_argument("--voice", help="TTS voice (default: the engine's)")
    talk_.add_argument("--rate", type=int, default=0, help="reply sample rate (default: the TTS engine's)")
    talk_.add_argument("--gateway", default=_default_address("gateway", 50051), help="[env VOICE_GATEWAY_ADDRESS]")
    talk_.add_argument("--token", default=os.environ.get("VOICE_TOKEN"), help="bearer token [env VOICE_TOKEN]")
    talk_.add_argument(
        "--tls-ca",
        metavar="FILE",
        default=os.environ.get("VOICE_TLS_CA"),
        help="TLS to a gateway that serves it, verified against this PEM CA [env VOICE_TLS_CA; default: plaintext]",
    )
    talk_.add_argument(
        "--resume",
        metavar="ID",
        help="go on with this conversation: an earlier talk's conversation_id, yours, within the gateway's resume"
        " window (120 s by default)",
    )
    talk_.set_defaults(run=cmd_talk)
    conversations.add_commands(commands, command)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        code = args.run(args)
    except grpc.RpcError as error:
        code = _fail(args, error.code().name, error.details() or "")
    except TurnFailed as failed:
        code = _fail(args, failed.error.code, failed.error.message)
    except (OSError, RuntimeError, TimeoutError, ValueError) as error:
        code = _fail(args, type(error).__name__, str(error))
    sys.exit(code)


def _fail(args: argparse.Namespace, code: str, message: str) -> int:
    if args.json:
        print(json.dumps({"error": {"code": code, "message": message}, "code": code}))
    print(f"voice-agent {args.command}: {code}: {message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    main()
