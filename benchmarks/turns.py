"""Turn-taking over the agent (`make bench-turns`, issue 17): backchannels, short interruptions, noise,
the agent's own echo, and a real interruption over the echo.

A fresh embedded stack (Piper, the agent's voice) or a running one (--gateway). Each case is one Converse
session: the user asks a question, and once the agent's first audio arrives says something over it,
spoken by an espeak-ng voice that is not the agent's (voice_ops/turn_sets.py):

- backchannels: "mm-hmm", "yeah", "I see", ... (target: at most 1 in 20 interrupts);
- intents: 1-4 words ("wait", "hold on", "what do you mean?"): target at least 19 in 20 interrupt, the
  decision (the gateway's InterruptionDecision.decision_ms, from the speech's start) at most 400 ms p50;
- noise: synthesised clicks, knocks, coughs and claps (target: at most 1 in 20 interrupts);
- echo: nothing said; the agent's reply comes back into the microphone 50-300 ms late at -6 to -20 dB,
  half of it through sox's reverb (target: no interruption and no user turn from the agent's words);
- echo + intent: the same echo with a real interruption spoken over it (target: at least 19 in 20).

For a held reply that resumed, the client's playout is modelled (each chunk plays from its arrival or the
end of the one before) and the longest gap in it reported, beside the same for replies nobody spoke over.
The same questions are also answered with the techniques switched on one by one (the session's
TurnTakingOptions), to set the cost in e2e_ms (the gateway's turn metrics: its figure less the network) of
each beside the others. Writes benchmarks/results/turns.json and turns.png.
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
from benchmarks.stats import run_info, summary, write_results
from voice_agent.audio import Pcm16Audio
from voice_agent.client.converse import Conversation
from voice_agent.v1 import gateway_pb2
from voice_ops.turn_sets import BACKCHANNELS, INTENTS, NOISES, EchoConversation, noise_burst, utterance

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


def _padded(audio: Pcm16Audio, tail_ms: int = 1500) -> Pcm16Audio:
    return Pcm16Audio(audio.data + b"\0" * (audio.sample_rate * tail_ms // 1000 * 2), audio.sample_rate)


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
    parser.add_argument("--cases", type=int, help="cases per set (default 20; --quick 2)")
    parser.add_argument("--sets", default=",".join(TARGETS), help="which sets, comma-separated (default: all)")
    parser.add_argument("--no-cost", action="store_true", help="skip the e2e_ms comparison of the techniques")
    args = parser.parse_args()
    count = args.cases or (2 if args.quick else 20)
    out = results_path(args.out, "turns")
    progress("making the test speech with espeak-ng ...")
    for question in QUESTIONS:
        spoken(question, tail_ms=1000)
    with tempfile.TemporaryDirectory() as logs, stack_from_args(args, Path(logs)) as stack:
        progress(f"{count} cases per set ...")
        rows = asyncio.run(run_sets(stack, count, set(args.sets.split(","))))
        progress("e2e_ms with each technique, side by side ...")
        cost, gaps = ({}, None) if args.no_cost else asyncio.run(e2e_cost(stack, max(1, count // 2)))
        description = stack.describe()
    report = rates(rows)
    results = {
        **run_info(),
        "stack": description,
        "settings": {"cases_per_set": count, "quick": args.quick},
        "sets": report,
        "e2e_ms_by_technique": cost,
        "longest_gap_ms_uninterrupted": gaps,
        "per_case": rows,
    }
    write_results(out, results)
    plot(report, cost, plot_path(out))


if __name__ == "__main__":
    main()
