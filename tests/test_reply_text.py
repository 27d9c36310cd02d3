"""What of an LLM reply may be spoken (gateway/reply_text.py): labels never are, whatever the persona."""

from __future__ import annotations

import dataclasses

import pytest

from gateway.reply_text import SpokenReply, labels_in, speakable

pytestmark = pytest.mark.unit  # no model, no service: make test-unit


def spoken(deltas: list[str], labels: tuple[str, ...] = ()) -> tuple[str, list[str]]:
    """The text passed on, and what each delta released."""
    reply = SpokenReply(labels)
    released = [reply.feed(delta) for delta in deltas]
    released.append(reply.finish())
    assert "".join(released) == reply.text
    return reply.text, released


@pytest.mark.parametrize(
    ("deltas", "expected"),
    [
        ([" Take", " a", " deep", " breath", "."], "Take a deep breath."),
        ([" Coach", ":", " Coach", ":", " Coach", ":"], ""),  # only labels: nothing to say
        ([" Coach", ": Take", " a breath."], "Take a breath."),
        ([" Head", ":", " Head:", " Start", " small."], "Start small."),
        ([" Head Coach", ": Sam", ": Try", " it."], "Try it."),
        ([" Try", " this.", " Client", ":", " and then"], "Try this."),  # the client's next line is cut
        ([" Try this. C", "lient: no"], "Try this."),
        ([" Good.", " user:", " hi"], "Good."),
        ([" Sure<", "end_of_turn>", " more"], "Sure"),
        ([" Sure.<|eot_id|>"], "Sure."),
        ([" Yes"], "Yes"),  # a one-word reply is said once the stream ends
        ([" ...", " *"], ""),  # nothing a voice can say: nothing passed on
        ([" ...", " Well", ", start."], "... Well, start."),
        ([" Note: keep", " it short."], "keep it short."),  # a capitalised word and a colon reads as a label
        ([" The plan: start", " small."], "The plan: start small."),  # not a label: lower case
        ([" I", " coach", " people", " daily."], "I coach people daily."),
        ([" A", " coaching", " plan."], "A coaching plan."),
    ],
)
def test_labels_are_never_spoken(deltas: list[str], expected: str) -> None:
    assert spoken(deltas)[0] == expected


def test_the_personas_own_labels_end_a_reply() -> None:
    persona = "You are Max, a trainer.\n\nMember: I am tired.\nMax: Rest a day, then walk for ten minutes."
    labels = labels_in(persona)
    assert labels == ("member", "max")
    assert spoken([" Rest", " well.", " Member", ": ok"], labels)[0] == "Rest well."


def test_only_what_could_still_be_a_label_is_held_back() -> None:
    _, released = spoken([" Take", " a", " deep", " breath", " now."])
    assert released[:2] == ["", "Take"]  # the first word waits for one more token, no longer
    assert released[2:4] == [" a deep", " breath"]  # "a" may start "assistant:" or "ai:"
    _, released = spoken([" Talk", " to", " a", " colleague", "."])
    assert released[2] == ""  # "a" may start "assistant:" or "ai:"
    assert released[3] == " a colleague"


def test_speakable() -> None:
    assert speakable("Hi.") and speakable("42")
    assert not speakable("") and not speakable(" ... *") and not speakable("\n")


def test_a_realtime_response_with_no_audio_is_never_completed() -> None:
    from gateway import events
    from gateway.realtime.server_events import Translator

    translator = Translator()
    metrics = events.TurnMetrics(1, 0, 0, 0, 0, 0, llm_tokens=0, interrupted=False, preemptive=False)
    (done,) = [e for e in translator.translate(metrics) if e["type"] == "response.done"]
    assert done["response"]["status"] == "failed"
    assert done["response"]["status_details"]["error"]["code"] == "no_output"
    translator.translate(events.AgentAudio(2, 0, b"\0\0" * 480, 24_000, 0, 3))
    (done,) = [e for e in translator.translate(dataclasses.replace(metrics, turn_id=2)) if e["type"] == "response.done"]
    assert done["response"]["status"] == "completed"
