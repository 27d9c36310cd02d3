"""Turn-taking over the agent (`make bench-turns`, issues 17 and 24): sentences, backchannels and the agent's
own echo, on natural material, through realistic echo paths; the espeak sets stay as a regression.

A fresh embedded stack (Piper, the agent's voice) or a running one (--gateway). Each case is one Converse
session: the user asks a question; 0.3-1 s into the agent's first audio it says something over it.

The natural material (the default, ``--material natural``; voice_ops/turn_sets.py, voice_ops/echo_paths.py),
each set at no echo and at residual echo levels of -35, -25, -18 and -12 dB (the echo's power over the agent's
audio as sent), through a small loudspeaker's nonlinearity, a pyroomacoustics room and, on half, a phone's
delay jitter:

- sentence: whole-sentence interruptions, every second a recorded human speaker (four of them), the others
  Kokoro voices at three speeds; measured: interrupted (the gateway cancelled the reply), the decision's
  decision_ms, the agent audio the client played while the sentence was being said (its playout modelled,
  the lead included: the client stops at the Interruption event), and the WER of the user's final transcript;
- backchannel: "yeah", "mm-hm", "right, right", "okay, sure", ... in Kokoro voices;
- echo: nothing said, the echo alone: no interruption, no user turn.

The issue's targets are printed as a table (sets x targets, measured vs target, met or not); ``--quick`` runs
3 cases a set (about 10 minutes on 2 shared cores), the default 20. ``--echo-mode`` measures the same with
WebRTC AEC3 on (``aec``: with the path fit; ``aec-only``: AEC3 and no echo rejection by text or path fit).

The espeak regression (``--material espeak``, issue 17), spoken by espeak-ng voices that are not the agent's:

- backchannels: "mm-hmm", "yeah", "I see", ... (target: at most 1 in 20 interrupts);
- intents: 1-4 words ("wait", "hold on", "what do you mean?"): target at least 19 in 20 interrupt, the
  decision (the gateway's InterruptionDecision.decision_ms, from the speech's start) at most 400 ms p50;
- noise: synthesised clicks, knocks, coughs and claps (target: at most 1 in 20 interrupts);
- echo: nothing said; the agent's reply comes back into the microphone 50-300 ms late at -6 to -20 dB,
  half of it through sox's reverb (target: no interruption and no user turn from the agent's words);
- echo + intent: the same echo with a real interruption spoken over it (target: at least 19 in 20).

For a held reply that resumed, the client's playout is modelled (each chunk plays from its arrival or the
end of the one before) and the longest gap in it reported, beside the same for replies nobody spoke over.
With --cost, the same questions are also answered with the techniques switched on one by one (the session's
TurnTakingOptions), to set the cost in e2e_ms (the gateway's turn metrics: its figure less the network) of
each beside the others. Writes benchmarks/results/turns.json and turns.png (espeak),
turns-natural-MODE.json (natural).
A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import grpc

from benchmarks.common import (
    Stack,
    add_stack_arguments,
    arg_parser,
    plot_path,
    progress,
    pyplot,
    results_path,
    spoken,
    stack_from_args,
)
from benchmarks.stats import percentile, run_info, summary, write_results
from voice_agent.audio import Pcm16Audio
from voice_agent.client.converse import CHUNK_MS, Conversation
from voice_agent.v1 import gateway_pb2
from voice_ops.echo_paths import EchoPath, realistic_paths
from voice_ops.samples import word_error_rate
from voice_ops.turn_sets import (
    BACKCHANNELS,
    INTENTS,
    NOISES,
    EchoConversation,
    backchannel_over,
    noise_burst,
    sentence_over,
    speech_onset_ms,
    utterance,
)

QUESTIONS = (
    "I have a job interview next week and I feel nervous",
    "How do I open a presentation to a big audience",
    "What should I say when I ask for a raise",
)
TARGETS = {
    "backchannel": "interrupted <= 1/20",
    "intent": "interrupted >= 19/20, decision_ms p50 <= 400",
    "noise": "interrupted <= 1/20",
    "echo": "0 interruptions, 0 user turns",
    "echo_intent": "interrupted >= 19/20",
}
DELAYS_MS = (50, 150, 300)
GAINS_DB = (-6, -12, -20)


def _padded(audio: Pcm16Audio, tail_ms: int = 1500, lead_ms: int = 0) -> Pcm16Audio:
    def silence(ms: int) -> bytes:
        return b"\0" * (audio.sample_rate * ms // 1000 * 2)

    return Pcm16Audio(silence(lead_ms) + audio.data + silence(tail_ms), audio.sample_rate)


def playout_gaps(arrivals: list[tuple[float, gateway_pb2.ConverseResponse]]) -> tuple[float, float]:
    """The client's playout, modelled: each agent audio chunk plays from when it arrives or when the one
    before it ends, whichever is later. Returns the longest gap (ms) between two chunks of the first reply
    and their total: silence the user hears inside the reply (a held reply resumed too late, or a TTS
    slower than real time)."""
    longest = total = 0.0
    play_end: float | None = None
    turn_id = None
    for arrived, event in arrivals:
        if event.WhichOneof("event") != "agent_audio":
            continue
        chunk = event.agent_audio
        if turn_id is None:
            turn_id = chunk.turn_id
        if chunk.turn_id != turn_id:
            break
        start = arrived if play_end is None else max(arrived, play_end)
        if play_end is not None and start > play_end:
            gap = (start - play_end) * 1000
            longest, total = max(longest, gap), total + gap
        play_end = start + len(chunk.audio) / 2 / chunk.sample_rate_hz
    return round(longest, 1), round(total, 1)


def _outcome(arrivals: list[tuple[float, gateway_pb2.ConverseResponse]], set_name: str) -> dict[str, Any]:
    events = [event for _, event in arrivals]
    kinds = [e.WhichOneof("event") for e in events]
    decisions = [e.interruption_decision for e in events if e.WhichOneof("event") == "interruption_decision"]
    metrics = [e.turn_metrics for e in events if e.WhichOneof("event") == "turn_metrics"]
    finals = [e.final_transcript.text for e in events if e.WhichOneof("event") == "final_transcript"]
    first = next((d for d in decisions), None)
    return {
        "set": set_name,
        "interrupted": "interruption" in kinds,
        "decisions": [[d.kind, round(d.decision_ms), d.text] for d in decisions],
        "decision_ms": round(first.decision_ms, 1) if first is not None else None,
        "decided_on": first.text if first is not None else "",
        "user_turns": len(finals),  # the question's, and any more
        "turns": len(metrics),
        "errors": kinds.count("error"),
        # the first reply's playout, modelled as the client plays it: longest gap and total (ms)
        "gap_ms": playout_gaps(arrivals),
        "resumed": any(d.kind != "interruption" for d in decisions),
    }


async def _case(channel: grpc.aio.Channel, question: str, over: Pcm16Audio | None, echo: dict | None) -> list:
    if echo is not None:
        session: Conversation = EchoConversation(channel, **echo)
    else:
        session = Conversation(channel)
    async with session:
        await session.speak(spoken(question, tail_ms=1000), barge_in=over, max_wait_s=90)
        await asyncio.sleep(2.5)  # a late echo final, or a backchannel's, would come now
    return list(session.events)


async def run_sets(stack: Stack, count: int, sets: set[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    async with grpc.aio.insecure_channel(stack.gateway) as channel:
        cases: list[tuple[str, Pcm16Audio | None, dict | None]] = []
        for i in range(count):
            cases.append(("backchannel", _padded(utterance(BACKCHANNELS[i % len(BACKCHANNELS)], i)), None))
            cases.append(("intent", _padded(utterance(INTENTS[i % len(INTENTS)], i)), None))
            cases.append(("noise", _padded(noise_burst(NOISES[i % len(NOISES)], seed=i)), None))
            echo = {"delay_ms": DELAYS_MS[i % 3], "gain_db": GAINS_DB[(i // 3) % 3], "reverb": i % 2 == 1}
            cases.append(("echo", None, echo))
            cases.append(("echo_intent", _padded(utterance(INTENTS[(i + 3) % len(INTENTS)], i + 1)), echo))
        cases = [case for case in cases if case[0] in sets]
        for number, (name, over, echo) in enumerate(cases):
            question = QUESTIONS[number % len(QUESTIONS)]
            row = _outcome(await _case(channel, question, over, echo), name)
            row |= {"echo": echo} if echo else {}
            rows.append(row)
            progress(f"  {number + 1}/{len(cases)} {name}: {row}")
    return rows


# ---- the natural material (issue 24)

#: Residual echo levels (dB of the agent's audio as sent); None: no echo.
LEVELS: tuple[float | None, ...] = (None, -35, -25, -18, -12)
#: The session's turn-taking for each --echo-mode: the default (text + the echo path fit), AEC3 on top of it,
#: AEC3 alone (no echo rejection by text, so no path fit either).
ECHO_MODES: dict[str, gateway_pb2.TurnTakingOptions | None] = {
    "default": None,
    "aec": gateway_pb2.TurnTakingOptions(
        interruption_decision=True, backchannels=True, echo_rejection=True, echo_cancellation=True
    ),
    "aec-only": gateway_pb2.TurnTakingOptions(
        interruption_decision=True, backchannels=True, echo_rejection=False, echo_cancellation=True
    ),
}


def level_name(level: float | None) -> str:
    return "no echo" if level is None else f"{level:g} dB"


def heard_over_ms(arrivals: list[tuple[float, gateway_pb2.ConverseResponse]], onset: float, duration_s: float) -> float:
    """The agent audio the client played while the user's speech (``onset``, ``duration_s`` long) went on:
    the first reply's chunks, each played from its arrival or the end of the one before, the playback stopped
    at the Interruption event (the lead the client had is heard until then)."""
    stop = next((t for t, e in arrivals if e.WhichOneof("event") == "interruption"), float("inf"))
    end, heard, play_end, turn_id = onset + duration_s, 0.0, 0.0, None
    for arrived, event in arrivals:
        if event.WhichOneof("event") != "agent_audio" or arrived >= stop:
            continue
        chunk = event.agent_audio
        turn_id = chunk.turn_id if turn_id is None else turn_id
        if chunk.turn_id != turn_id:
            break
        start = max(arrived, play_end)
        play_end = start + len(chunk.audio) / 2 / chunk.sample_rate_hz
        heard += max(0.0, min(play_end, stop, end) - max(start, onset))
    return round(heard * 1000, 1)


def _natural_outcome(
    session: EchoConversation, set_name: str, level: float | None, said: tuple[str, str, Pcm16Audio] | None
) -> dict[str, Any]:
    arrivals = list(session.events)
    row = _outcome(arrivals, set_name) | {"level": level_name(level)}
    finals = [e.final_transcript.text for _, e in arrivals if e.WhichOneof("event") == "final_transcript"]
    if said is not None:
        source, text, audio = said
        speech_ms = speech_onset_ms(audio)  # a recording's cut may begin with a click and silence
        onset = (session.over_sent_at or 0.0) - CHUNK_MS / 1000 + speech_ms / 1000
        row |= {"source": source, "said": text, "said_ms": audio.duration_ms, "heard_by_user": finals[1:]}
        row |= {"speech_onset_ms": speech_ms}
        row["heard_over_ms"] = (
            heard_over_ms(arrivals, onset, (audio.duration_ms - speech_ms) / 1000) if session.over_sent_at else None
        )
    return row


async def _natural_case(
    channel: grpc.aio.Channel,
    question: Pcm16Audio,
    said: tuple[str, str, Pcm16Audio] | None,
    path: EchoPath | None,
    options: gateway_pb2.TurnTakingOptions | None,
    after_s: float,
) -> EchoConversation:
    kw: dict[str, Any] = {"turn_taking": options} if options is not None else {}
    session = EchoConversation(channel, path=path, gain_db=None, **kw)
    async with session:
        await session.speak_over(question, said[2] if said else None, after_s=after_s)
        await asyncio.sleep(1.5 if said else 2.5)  # a late echo final, or a backchannel's, would come now
    return session


def natural_cases(count: int, sets: set[str]) -> list[tuple[str, float | None, int]]:
    """(set, level, index) for each case: the same speech at every level, so that levels compare."""
    cases = []
    for kind in ("sentence", "backchannel", "echo"):
        for level in LEVELS:
            name = f"{kind}@{level_name(level)}"
            if (kind == "echo" and level is None) or not ({kind, name} & sets or "all" in sets):
                continue
            cases += [(kind, level, i) for i in range(count)]
    return cases


async def run_natural(stack: Stack, count: int, sets: set[str], mode: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cases = natural_cases(count, sets)
    async with grpc.aio.insecure_channel(stack.gateway) as channel:
        for number, (kind, level, i) in enumerate(cases):
            question = spoken(QUESTIONS[i % len(QUESTIONS)], tail_ms=1000)  # what the reply answers: not measured
            said = sentence_over(i) if kind == "sentence" else backchannel_over(i) if kind == "backchannel" else None
            path = realistic_paths(level, i + 1)[i] if level is not None else None
            after_s = 0.3 + 0.7 * ((i * 7) % 10) / 10  # 0.3-1 s into the reply
            session = await _natural_case(channel, question, said, path, ECHO_MODES[mode], after_s)
            row = _natural_outcome(session, kind, level, said)
            row |= {"echo_path": path.describe() if path else None, "echo_mode": mode}
            rows.append(row)
            progress(f"  {number + 1}/{len(cases)} {kind} @ {level_name(level)}: {_brief(row)}")
    return rows


def _brief(row: dict[str, Any]) -> str:
    keys = ("interrupted", "decision_ms", "decided_on", "heard_over_ms", "said", "heard_by_user", "user_turns")
    return str({k: row[k] for k in keys if k in row})


def _check(measured: str, met: bool, target: str) -> tuple[str, str, str]:
    return measured, target, "met" if met else "NOT met"


def target_table(rows: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    """The issue's targets, each set against its figure: (set, measured, target, met)."""
    table: list[tuple[str, str, str, str]] = []

    def of(kind: str, level: float | None) -> list[dict[str, Any]]:
        return [r for r in rows if r["set"] == kind and r["level"] == level_name(level)]

    sentences = of("sentence", None)
    if sentences:
        hit = sum(r["interrupted"] for r in sentences)
        decided = [r["decision_ms"] for r in sentences if r["interrupted"] and r["decision_ms"] is not None]
        p50 = percentile(decided, 50) if decided else float("nan")
        table.append(
            (
                "sentence interruptions, no echo",
                *_check(
                    f"{hit}/{len(sentences)} interrupted, decision p50 {p50:.0f} ms",
                    hit >= 0.95 * len(sentences) and p50 <= 500,
                    ">= 19/20, decision p50 <= 500 ms",
                ),
            )
        )
    for level in (-25, -12):
        cases = of("sentence", level)
        if cases:
            hit = sum(r["interrupted"] for r in cases)
            measured = f"{hit}/{len(cases)} interrupted"
            table.append(
                (f"sentence interruptions at {level} dB", *_check(measured, hit >= 0.95 * len(cases), ">= 19/20"))
            )
    for level in LEVELS:
        heard = [r["heard_over_ms"] for r in of("sentence", level) if r.get("heard_over_ms") is not None]
        if heard:
            p50, p95 = percentile(heard, 50), percentile(heard, 95)
            table.append(
                (
                    f"agent heard over a sentence, {level_name(level)}",
                    *_check(
                        f"p50 {p50:.0f} ms, p95 {p95:.0f} ms", p50 <= 400 and p95 <= 600, "p50 <= 400 ms, p95 <= 600 ms"
                    ),
                )
            )
    for level in LEVELS:
        cases = of("backchannel", level)
        if cases:
            hit = sum(r["interrupted"] for r in cases)
            table.append(
                (
                    f"backchannels, {level_name(level)}",
                    *_check(f"{hit}/{len(cases)} interrupted", hit <= len(cases) / 20, "<= 1/20"),
                )
            )
    for level in LEVELS[1:]:
        cases = of("echo", level)
        if cases:
            hit = sum(r["interrupted"] for r in cases)
            turns = sum(max(0, r["user_turns"] - 1) for r in cases)
            table.append(
                (
                    f"echo alone, {level_name(level)}",
                    *_check(
                        f"{hit} interruptions, {turns} user turns in {len(cases)}", hit == 0 and turns == 0, "0 and 0"
                    ),
                )
            )
    clean, echoed = _transcripts(of("sentence", None)), _transcripts(of("sentence", -25))
    if clean[0] and echoed[0]:
        wer_clean, wer_echo = (100 * word_error_rate(refs, hyps) for refs, hyps in (clean, echoed))
        table.append(
            (
                "user's transcript at -25 dB vs no echo",
                *_check(f"WER {wer_echo:.1f} % vs {wer_clean:.1f} %", wer_echo - wer_clean <= 5, "within 5 points"),
            )
        )
    table.append(("held-out human speech, e2e p50", "not measured here (end-of-turn work)", "<= 700 ms", "-"))
    return table


def _transcripts(cases: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """The sentences said and what the user's transcript made of them (its finals after the question's)."""
    return [r["said"] for r in cases], [" ".join(r["heard_by_user"]) for r in cases]


def print_table(table: list[tuple[str, str, str, str]], title: str) -> None:
    print(f"\n{title}\n")
    print("| set | measured | target | |")
    print("|---|---|---|---|")
    for row in table:
        print("| " + " | ".join(row) + " |")


def natural_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per set and level: cases, interruptions, decision_ms, heard_over_ms, extra user turns."""
    out: dict[str, Any] = {}
    for kind in ("sentence", "backchannel", "echo"):
        for level in LEVELS:
            cases = [r for r in rows if r["set"] == kind and r["level"] == level_name(level)]
            if not cases:
                continue
            decided = [r["decision_ms"] for r in cases if r["decision_ms"] is not None]
            heard = [r["heard_over_ms"] for r in cases if r.get("heard_over_ms") is not None]
            out[f"{kind} @ {level_name(level)}"] = {
                "cases": len(cases),
                "interrupted": sum(r["interrupted"] for r in cases),
                "decision_ms": summary(decided) if decided else None,
                "heard_over_ms": summary(heard) if heard else None,
                "extra_user_turns": sum(max(0, r["user_turns"] - 1) for r in cases),
                "decisions": [r["decisions"] for r in cases],
            }
    return out


#: Each technique added on top of the one before, measured side by side on the same questions.
COST_STEPS: dict[str, dict[str, bool]] = {
    name: dict(zip(("interruption_decision", "backchannels", "echo_rejection", "echo_cancellation"), on, strict=True))
    for name, on in (
        ("off", (False, False, False, False)),
        ("decision", (True, False, False, False)),
        ("decision+backchannels", (True, True, False, False)),
        ("all (default)", (True, True, True, False)),
        ("all + echo cancellation", (True, True, True, True)),
    )
}


async def e2e_cost(stack: Stack, count: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The same questions with each step of COST_STEPS in turn, the order rotating each round (llama.cpp
    keeps one prompt: whoever asks first in a round prefills anew): the gateway's e2e_ms per turn.
    The decision's only work outside speech over the agent is the ASR's interim interval, and that is
    shortened only while an agent turn runs, so the steps should measure the same."""
    e2e: dict[str, list[float]] = {name: [] for name in COST_STEPS}
    gaps: list[float] = []  # the control for the resumed replies' gaps: replies nobody spoke over
    names = list(COST_STEPS)
    async with grpc.aio.insecure_channel(stack.gateway) as channel:
        for i in range(count):
            for name in names[i % len(names) :] + names[: i % len(names)]:
                options = gateway_pb2.TurnTakingOptions(**COST_STEPS[name])
                async with Conversation(channel, turn_taking=options) as session:
                    result = await session.speak(spoken(QUESTIONS[i % len(QUESTIONS)], tail_ms=1000), max_wait_s=90)
                value = result.metrics().get("e2e_ms", 0.0)
                if value > 0:
                    e2e[name].append(value)
                gaps.append(playout_gaps(session.events)[0])
    return {name: summary(values) for name, values in e2e.items()}, summary(gaps)


def rates(rows: list[dict[str, Any]]) -> dict[str, Any]:
    report: dict[str, Any] = {}
    for name, target in TARGETS.items():
        of_set = [r for r in rows if r["set"] == name]
        entry: dict[str, Any] = {"cases": len(of_set), "interrupted": sum(r["interrupted"] for r in of_set)}
        entry["target"] = target
        decided = [r["decision_ms"] for r in of_set if r["decision_ms"] is not None]
        entry["decision_ms"] = summary(decided) if decided else None
        if name == "echo":
            entry["extra_user_turns"] = sum(max(0, r["user_turns"] - 1) for r in of_set)
        resumed = [r["gap_ms"][0] for r in of_set if r["resumed"] and not r["interrupted"]]
        entry["resumed"] = len(resumed)
        entry["longest_gap_ms_when_resumed"] = summary(resumed) if resumed else None
        report[name] = entry
    return report


def plot(report: dict[str, Any], cost: dict[str, Any], results: Path) -> None:
    plt = pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5), gridspec_kw={"width_ratios": [2, 1]})
    names = [n for n in report if report[n]["cases"]]
    share = [report[n]["interrupted"] / max(1, report[n]["cases"]) for n in names]
    left.bar(names, share, color=["tab:red" if "intent" in n else "tab:green" for n in names])
    left.set_ylim(0, 1.05)
    left.set_ylabel("share of cases that interrupted the agent")
    left.set_title("Speech over the agent")
    right.bar(list(cost), [cost[k]["p50"] for k in cost], color="tab:blue")
    right.set_ylabel("e2e_ms p50 (gateway)")
    right.set_title("e2e_ms by technique (cumulative)")
    right.tick_params(axis="x", labelrotation=20)
    figure.tight_layout()
    figure.savefig(results)


def main() -> None:
    parser = arg_parser(__doc__, "turns")
    add_stack_arguments(parser)
    parser.add_argument("--cases", type=int, help="cases per set (default 20; --quick 3)")
    parser.add_argument("--material", choices=("natural", "espeak"), default="natural", help="which sets")
    parser.add_argument(
        "--sets",
        default="all",
        help="which sets, comma-separated: natural 'sentence', 'backchannel', 'echo' or one level of them "
        "('sentence@-25 dB'); espeak " + ", ".join(TARGETS) + " (default: all)",
    )
    parser.add_argument("--echo-mode", choices=tuple(ECHO_MODES), default="default", help="natural: the echo handling")
    parser.add_argument("--cost", action="store_true", help="also the e2e_ms comparison of the techniques")
    args = parser.parse_args()
    count = args.cases or (3 if args.quick and args.material == "natural" else 2 if args.quick else 20)
    out = results_path(args.out, "turns" if args.material == "espeak" else f"turns-{args.material}-{args.echo_mode}")
    sets = set(args.sets.split(","))
    progress("making the test speech (espeak-ng, Kokoro, the recorded call) ...")
    for question in QUESTIONS:
        spoken(question, tail_ms=1000)
    with tempfile.TemporaryDirectory() as logs, stack_from_args(args, Path(logs)) as stack:
        progress(f"{count} cases per set ...")
        if args.material == "natural":
            rows = asyncio.run(run_natural(stack, count, sets, args.echo_mode))
        else:
            rows = asyncio.run(run_sets(stack, count, set(TARGETS) if "all" in sets else sets))
        cost, gaps = ({}, None)
        if args.cost:
            progress("e2e_ms with each technique, side by side ...")
            cost, gaps = asyncio.run(e2e_cost(stack, max(1, count // 2)))
        description = stack.describe()
    report = natural_summary(rows) if args.material == "natural" else rates(rows)
    table = target_table(rows) if args.material == "natural" else []
    results = {
        **run_info(),
        "stack": description,
        "settings": {
            "cases_per_set": count,
            "quick": args.quick,
            "material": args.material,
            "echo_mode": args.echo_mode,
        },
        "sets": report,
        "targets": [dict(zip(("set", "measured", "target", "met"), row, strict=True)) for row in table],
        "e2e_ms_by_technique": cost,
        "longest_gap_ms_uninterrupted": gaps,
        "per_case": rows,
    }
    write_results(out, results)
    if args.material == "espeak":
        plot(report, cost, plot_path(out))
    else:
        print_table(table, f"make bench-turns ({args.material} material, echo mode {args.echo_mode}, {count} a set)")


if __name__ == "__main__":
    main()
