"""The conversation as the LLM sees it: kept within its token budget without defeating the prefix cache.

`make bench-long` (2026-12-07) found every turn after the 45th of a session taking 4-5 s: once the history
reached its budget, each new turn dropped the oldest one, so the prompt changed right after the system
prompt every turn and the LLM server prefilled the whole history again (its prefix cache keeps the longest
common prefix of the last prompt).
"""

from __future__ import annotations

import pytest

from gateway.history import History, estimate_tokens

pytestmark = pytest.mark.unit  # no model, no service: make test-unit

SYSTEM = "You are a coach."


def exchange(history: History, number: int) -> list[dict[str, str]]:
    """One user turn and its reply; returns the messages the user turn was answered with."""
    history.add_user(f"Question number {number}: how do I keep my talk short and clear for everyone?")
    messages = history.messages()
    history.add_agent(f"Answer number {number}: cut one point, and say the rest in plain words.", turn_id=number)
    return messages


def prompt_tokens(messages: list[dict[str, str]]) -> int:
    return sum(estimate_tokens(m["content"]) for m in messages)


def test_the_history_stays_within_its_budget_and_keeps_the_newest_turn() -> None:
    history = History(SYSTEM, 300)
    for number in range(60):
        messages = exchange(history, number)
        assert messages[0] == {"role": "system", "content": SYSTEM}
        assert messages[-1]["content"].startswith(f"Question number {number}:")
        assert prompt_tokens(messages) <= 300


def test_a_full_history_changes_its_prefix_only_every_few_turns() -> None:
    """Past the budget, the oldest turns go a third of the budget at a time: the prompt the LLM saw last
    turn is the prefix of this turn's prompt on most turns, so its prefix cache still holds it."""
    history = History(SYSTEM, 1200)  # the gateway's default budget; an exchange here is ~40 tokens
    previous: list[dict[str, str]] = []
    cache_misses = 0
    for number in range(120):
        messages = exchange(history, number)
        if previous and messages[: len(previous)] != previous:
            cache_misses += 1
        previous = [*messages, {"role": "assistant", "content": history.turns[-1]["content"]}]
    # Dropping one turn whenever over budget changed the prefix on every turn from the 30th: 90 misses.
    assert 0 < cache_misses <= 120 // 8, cache_misses


def test_a_trimmed_history_starts_with_the_user() -> None:
    history = History(SYSTEM, 200)
    for number in range(20):
        assert exchange(history, number)[1]["role"] == "user"
