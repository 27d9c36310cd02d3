"""Personas benchmark (`make bench-personas`): does every persona get a spoken reply?

The persona is the first thing an operator sets. Eleven personas of different styles and lengths
(one sentence to a paragraph; two with example exchanges of their own, one in the dialogue's labels and
one in others; one that is not coaching at all; the built-in one) each hold one conversation of ten
spoken questions with the embedded default stack, over Converse with ``SessionConfig.system_prompt``.
The questions are spoken by the stack's own TTS voice at several rates (not the words the built-in
persona's examples use).

Per persona, and in all, it counts:
- silent replies: a turn that ended with no reply audio (target 0);
- label replies: a reply whose words hold a speaker label, a capitalised word and a colon (target 0);
- parroted replies: a reply that only repeats the question (its words are the question's, or nearly);
- LLM replies with nothing to say, from the gateway's own counter (voice_gateway_empty_replies_total):
  recovered by a retry with the built-in persona, or by the fallback line;
- e2e_ms p50/p95 (client-measured).

Writes benchmarks/results/personas.json. A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import asyncio
import difflib
import re
import sys
import tempfile
import urllib.request
from pathlib import Path

import grpc

from benchmarks.common import add_stack_arguments, arg_parser, progress, results_path, stack_from_args
from benchmarks.stats import run_info, summary, write_results
from gateway.persona import DEFAULT_SYSTEM_PROMPT, FALLBACK_REPLY
from voice_agent.audio import Pcm16Audio
from voice_agent.client.converse import Conversation
from voice_agent.client.tts import synthesize
from voice_ops.samples import normalize

RESULTS = Path(__file__).resolve().parent / "results" / "personas.json"

PERSONAS: dict[str, str] = {
    "built-in": DEFAULT_SYSTEM_PROMPT,
    "one line": "You are a helpful coach.",
    "terse": "Language tutor. Correct the client's English gently.",
    "strict": "You are a strict fitness coach. Be direct and demanding, never soft.",
    "named": "You are Maya, a calm mindfulness teacher who helps people manage stress at work.",
    "head of": "You are the head of engineering at a startup, mentoring a junior developer.",
    "paragraph": (
        "You are Jordan, a sales coach with twenty years of experience in business-to-business software sales."
        " Your clients are new account executives who struggle with cold calls, objections and closing. You"
        " believe in preparation, active listening and asking good questions. You are encouraging but honest,"
        " you give one concrete technique at a time, and you often ask the client to practise it on the spot."
        " Keep every answer short enough to say in one breath."
    ),
    "own examples": (
        "You are Alex, an interview coach for software engineers.\n\n"
        "Client: I freeze on whiteboard questions.\n"
        "Coach: Talk through your thinking out loud, even the parts you are unsure of.\n"
        "Client: How do I answer questions about salary?\n"
        "Coach: Give a researched range and say you are flexible for the right role."
    ),
    "other labels": (
        "You are a friendly study coach for university students.\n\n"
        "User: I keep putting off my essay.\n"
        "Assistant: Write for ten minutes now, badly on purpose; starting is the hard part.\n"
        "User: I can't focus in the library.\n"
        "Assistant: Try a different spot each day and leave your phone in your bag."
    ),
    "upbeat": "You are a cheerful career counsellor for students! Keep it upbeat and use simple words.",
    "not coaching": (
        "You are the receptionist of a dental clinic. You book appointments and answer questions about opening"
        " hours, prices and insurance."
    ),
}

QUESTIONS = [
    "I have a job interview on Monday and I can't sleep",
    "How do I tell my boss that I am overwhelmed",
    "What is the first thing I should do this morning",
    "Can you help me prepare for a difficult conversation",
    "I keep procrastinating, what should I do",
    "How do I say no to extra work",
    "Is it normal to feel nervous all the time",
    "What should I practise today",
    "My team does not listen to my ideas",
    "Thanks, what else can I try",
]
SPEEDS = (0.9, 1.0, 1.1, 1.2)
QUICK_PERSONAS = ("one line", "head of")  # --quick: two personas, two questions
_LABEL = re.compile(r"(?:^|\s)[A-Z][A-Za-z'-]*:")  # "Coach:", "Head:": stricter than the gateway's own filter


def parroted(question: str, reply: str) -> bool:
    """The reply only repeats the question: its words are the question's, or nearly."""
    asked, said = normalize(question).split(), normalize(reply).split()
    if not said:
        return False
    return set(said) <= set(asked) or difflib.SequenceMatcher(None, asked, said).ratio() >= 0.8


def empty_replies(metrics_address: str) -> dict[str, float]:
    """The gateway's voice_gateway_empty_replies_total, by recovery."""
    with urllib.request.urlopen(f"http://{metrics_address}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    counts = {}
    for recovery in ("retry", "fallback"):
        match = re.search(rf'^voice_gateway_empty_replies_total{{recovery="{recovery}"}} (\S+)$', text, re.MULTILINE)
        counts[recovery] = float(match.group(1)) if match else 0.0
    return counts


async def spoken_questions(tts_address: str) -> list[Pcm16Audio]:
    silence = b"\0" * 32  # 1 ms at 16 kHz
    questions = []
    async with grpc.aio.insecure_channel(tts_address) as channel:
        for number, question in enumerate(QUESTIONS):
            said = await synthesize(channel, question, speed=SPEEDS[number % len(SPEEDS)], sample_rate_hz=16_000)
            questions.append(Pcm16Audio(silence * 300 + said.audio().data, 16_000))
    return questions


async def persona_conversation(gateway: str, persona: str, questions: list[Pcm16Audio]) -> list[dict[str, object]]:
    rows = []
    async with grpc.aio.insecure_channel(gateway) as channel, Conversation(channel, system_prompt=persona) as talk:
        for question, audio in zip(QUESTIONS, questions, strict=False):
            result = await talk.speak(audio)
            reply = result.reply
            row = {
                "question": question,
                "transcript": result.transcript,
                "reply": reply,
                "audio_ms": result.reply_audio().duration_ms,
                "errors": [error.message for error in result.errors],
                **{key: value for key, value in result.metrics().items() if key == "e2e_ms"},
            }
            row["silent"] = row["audio_ms"] == 0
            row["label"] = bool(_LABEL.search(reply))
            row["parroted"] = parroted(question, reply) or parroted(str(row["transcript"]), reply)
            row["fallback"] = reply.strip() == FALLBACK_REPLY
            print(f"    {question!r} -> {reply!r}", file=sys.stderr, flush=True)
            rows.append(row)
    return rows


def tally(rows: list[dict[str, object]]) -> dict[str, object]:
    return {
        "turns": len(rows),
        "silent": sum(bool(row["silent"]) for row in rows),
        "label": sum(bool(row["label"]) for row in rows),
        "parroted": sum(bool(row["parroted"]) for row in rows),
        "fallback": sum(bool(row["fallback"]) for row in rows),
        "failed": sum(bool(row["errors"]) for row in rows),
        "e2e_ms": summary([float(row["e2e_ms"]) for row in rows if "e2e_ms" in row]),  # type: ignore[arg-type]
    }


async def run(gateway: str, tts: str, gateway_metrics: str | None, *, quick: bool) -> dict[str, object]:
    questions = await spoken_questions(tts)
    chosen = {name: PERSONAS[name] for name in QUICK_PERSONAS} if quick else PERSONAS
    questions = questions[:2] if quick else questions
    personas: dict[str, object] = {}
    all_rows: list[dict[str, object]] = []
    for name, persona in chosen.items():
        progress(f"persona {name!r} ...")
        before = empty_replies(gateway_metrics) if gateway_metrics else {}
        rows = await persona_conversation(gateway, persona, questions)
        after = empty_replies(gateway_metrics) if gateway_metrics else {}
        counts = tally(rows)
        counts["llm_empty"] = {key: after[key] - before[key] for key in after}
        personas[name] = {**counts, "persona": persona, "turns_detail": rows}
        all_rows += rows
        progress(f"  {name}: " + ", ".join(f"{k} {v}" for k, v in counts.items() if k != "e2e_ms"))
    total = tally(all_rows)
    total["llm_empty"] = {
        key: sum(p["llm_empty"].get(key, 0) for p in personas.values())  # type: ignore[index,union-attr]
        for key in ("retry", "fallback")
    }
    return {"total": total, "personas": personas}


def print_table(results: dict[str, object]) -> None:
    personas: dict[str, dict[str, object]] = results["personas"]  # type: ignore[assignment]
    print(f"\n{'persona':<14} {'silent':>6} {'label':>6} {'parrot':>6} {'retry':>6} {'fallbk':>6} {'e2e p50':>8}")
    rows = [*personas.items(), ("all", results["total"])]
    for name, counts in rows:
        empty = counts.get("llm_empty", {})
        e2e = counts["e2e_ms"].get("p50", 0)  # type: ignore[union-attr]
        print(
            f"{name:<14} {counts['silent']:>6} {counts['label']:>6} {counts['parroted']:>6}"
            f" {empty.get('retry', 0):>6g} {empty.get('fallback', 0):>6g} {e2e:>8.0f}"  # type: ignore[union-attr]
        )
    print("targets: silent 0, label 0 (issue 22)")


def main() -> None:
    parser = arg_parser(__doc__, "personas")
    add_stack_arguments(parser)
    parser.add_argument("--gateway-metrics", help="with --gateway: its /metrics host:port, for the empty-reply counts")
    args = parser.parse_args()
    out = results_path(args.out, "personas")
    with tempfile.TemporaryDirectory() as logs, stack_from_args(args, Path(logs)) as stack:
        gateway_process = next((s for s in stack.started if s.name == "gateway"), None)
        metrics = f"127.0.0.1:{gateway_process.metrics_port}" if gateway_process else args.gateway_metrics
        results = asyncio.run(run(stack.gateway, stack.addresses["tts"], metrics, quick=args.quick))
        write_results(out, {"run": run_info(), "stack": stack.describe(), **results})
    print_table(results)
    print(f"results: {out}")


if __name__ == "__main__":
    main()
