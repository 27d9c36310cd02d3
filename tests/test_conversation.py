"""The conversation core, scripted event by event on FAKE backends (tests/scripted.py): a unit test of
its orchestration: turns, preemption, speech over the agent, the ASR's failures, typed text, the drain.
The same paths on the real models are in test_gateway.py, test_turn_taking.py and test_faults.py."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from scripted import ScriptedReply, ScriptedSession

from gateway import overlap
from gateway.config import GatewayConfig, LimitSettings
from gateway.events import (
    AgentAudio,
    CancelReply,
    Error,
    Interruption,
    InterruptionDecision,
    SessionStarted,
    TextIn,
    Transcript,
    Truncate,
    Truncated,
    TurnMetrics,
)
from gateway.records.ids import is_conversation_id
from voice_agent.errors import Draining
from voice_agent.v1 import asr_pb2

pytestmark = pytest.mark.unit

REPLY = ["Take", " two", " slow", " breaths", " before", " you", " start", " your", " talk", "."]
LONG_REPLY = [*REPLY, " Then", " look", " at", " one", " friendly", " face", ".", " Then", " begin", " slowly", "."]


async def test_a_plain_turn() -> None:
    async with ScriptedSession() as session:
        session.llm.replies(["Start", " with", " a", " story."])
        await session.user_says("How do I start my talk?")
        final = await session.next(Transcript)
        assert final.final and final.text == "How do I start my talk?"
        metrics = await session.next(TurnMetrics)
        assert not metrics.interrupted and not metrics.preemptive and metrics.llm_tokens == 4
        assert session.reply_text(metrics.turn_id) == "Start with a story."
        assert session.audio_sequence(metrics.turn_id) == list(range(len(session.audio_sequence(metrics.turn_id))))
        assert session.history() == [
            {"role": "user", "content": "How do I start my talk?"},
            {"role": "assistant", "content": "Start with a story."},
        ]
        assert len(session.llm.requests) == 1


async def test_every_conversation_starts_with_its_id() -> None:
    async with ScriptedSession() as session:
        started = session.events[0]
        assert isinstance(started, SessionStarted) and is_conversation_id(started.conversation_id)
        assert started.conversation_id == session.conversation.conversation_id
        assert not started.resumed and started.resume_window_s == 120 and started.last_turn_id == 0
    async with ScriptedSession() as other:
        assert other.of(SessionStarted)[0].conversation_id != started.conversation_id


async def test_a_new_prompt_is_warmed_in_the_llm_as_the_conversation_starts() -> None:
    """The gateway warms the built-in persona's prefix once, at start. A persona of the session's own (or
    one with the caller's memory) is a prefix the LLM has not seen: it is warmed as the conversation starts,
    while the user speaks (before, each `voice-agent talk` waited 780 ms p50 for its prefill)."""
    async with ScriptedSession(system_prompt="You are Ada, a negotiation coach.") as session:
        await session.until(lambda: session.llm.warmed)
        assert session.llm.warmed == [[{"role": "system", "content": "You are Ada, a negotiation coach."}]]
    async with ScriptedSession() as default:
        await default.user_says("How do I start my talk?")
        await default.next(TurnMetrics)
        assert default.llm.warmed == []  # the built-in persona: warmed once by the gateway, not per conversation


async def test_a_history_trimmed_at_the_end_of_a_reply_is_warmed_for_the_next_turn() -> None:
    """A full history is trimmed when the agent's reply ends, and the new prompt warmed while the user
    speaks: the turn after a trim would otherwise wait for the whole history's prefill (4 s on the
    embedded model at the 46th turn of `make bench-long`)."""
    config = dataclasses.replace(GatewayConfig(), limits=LimitSettings(history_tokens=150))
    async with ScriptedSession(config) as session:
        session.llm.replies(["Cut", " one", " point", " and", " say", " the", " rest", " in", " plain", " words."])
        for number in range(8):
            await session.user_says(f"Question {number}: how do I keep my talk short and clear?")
            await session.next(TurnMetrics)
            if session.llm.warmed:
                break
        assert session.llm.warmed, "the history never reached its budget"
        (warmed,) = session.llm.warmed
        assert warmed[0]["role"] == "system" and warmed[-1]["role"] == "assistant"
        await session.user_says("And how do I end it?")
        await session.next(TurnMetrics)
        assert session.llm.requests[-1][: len(warmed)] == warmed  # the next turn's prompt starts with it


async def test_a_preemptive_reply_is_kept_when_the_final_matches_the_pause() -> None:
    async with ScriptedSession() as session:
        session.asr.speech_started()
        await session.settle()
        session.asr.paused("How do I start my talk?")
        await session.until(lambda: len(session.llm.requests) == 1)  # the reply started on the pause
        await session.settle(0.1)
        assert not session.of(AgentAudio)  # its audio waits for the final
        session.asr.speech_ended()
        session.asr.final("How do I start my talk?")
        metrics = await session.next(TurnMetrics)
        assert metrics.preemptive and len(session.llm.requests) == 1
        assert session.history()[0] == {"role": "user", "content": "How do I start my talk?"}


async def test_a_preemptive_reply_is_discarded_when_the_user_goes_on() -> None:
    async with ScriptedSession() as session:
        session.llm.replies(["Nobody", " hears", " this."], ["Start", " with", " a", " story."])
        session.asr.speech_started()
        await session.settle()
        session.asr.paused("How do I")
        await session.until(lambda: len(session.llm.requests) == 1)
        session.asr.resumed()
        await session.settle()
        session.asr.speech_ended()
        session.asr.final("How do I start my talk?")
        metrics = await session.next(TurnMetrics)
        assert not metrics.preemptive and len(session.llm.requests) == 2
        assert session.reply_text(metrics.turn_id) == "Start with a story."
        assert "Nobody" not in "".join(session.reply_text(t) for t in range(5))  # the discarded one sent nothing
        assert session.history()[-1]["content"] == "Start with a story."


async def agent_speaking(session: ScriptedSession, reply: list[str] = REPLY) -> int:
    """The user asks; the agent has started answering, slowly (its audio lasts a while)."""
    session.tts.ms_per_char = 40.0  # ~2 s of audio for the reply: time to talk over it
    session.llm.replies(reply)
    await session.user_says("How do I calm down before a talk?")
    first = await session.next(AgentAudio)
    return first.turn_id


async def the_echo_alone_went_on(session: ScriptedSession, turn_id: int) -> None:
    """The utterance over the agent was decided its echo: the reply went on, and nobody's words came of it."""
    decision = await session.next(InterruptionDecision)
    assert decision.kind == "echo" and decision.turn_id == turn_id
    metrics = await session.next(TurnMetrics, timeout_s=8)
    assert metrics.turn_id == turn_id and not metrics.interrupted
    assert not session.of(Interruption)
    assert [t.text for t in session.of(Transcript) if t.final] == ["How do I calm down before a talk?"]
    assert len(session.llm.requests) == 1


def transcribed_again(session: ScriptedSession, text: str) -> None:
    """The latest transcription of the echo-removed audio (a Recognize call of its own) hears ``text``."""
    again = session.asr.calls[-1]
    again.push(asr_pb2.RecognizeResponse(final=asr_pb2.Transcript(text=text)))
    again.push(None)


async def the_backchannel_was_kept(session: ScriptedSession, turn_id: int, said: str) -> None:
    """The utterance over the agent was decided the backchannel ``said``: the reply went on, and ``said`` is the
    user's final transcript and joins the history, starting no turn."""
    decision = await session.next(InterruptionDecision)
    assert decision.kind == "backchannel" and decision.text == said
    metrics = await session.next(TurnMetrics, timeout_s=8)
    assert metrics.turn_id == turn_id and not metrics.interrupted
    assert not session.of(Interruption)
    assert [t.text for t in session.of(Transcript) if t.final][1:] == [said]
    assert session.history()[-1] == {"role": "user", "content": said}
    assert len(session.llm.requests) == 1


async def test_a_backchannel_resumes_the_held_audio_with_nothing_lost() -> None:
    async with ScriptedSession() as session:
        turn_id = await agent_speaking(session)
        session.asr.speech_started()
        await session.settle(0.3)
        held = len(session.audio_sequence(turn_id))
        await session.settle(0.3)
        assert len(session.audio_sequence(turn_id)) == held  # held while the speech is decided
        session.asr.interim("Yeah.")
        await session.settle()
        session.asr.speech_ended()
        session.asr.final("Yeah.")
        decision = await session.next(InterruptionDecision)
        assert decision.kind == "backchannel" and decision.turn_id == turn_id
        metrics = await session.next(TurnMetrics, timeout_s=5)
        assert metrics.turn_id == turn_id and not metrics.interrupted
        sequence = session.audio_sequence(turn_id)
        assert sequence == list(range(len(sequence)))  # every chunk, in order: nothing lost
        assert session.reply_text(turn_id) == "".join(REPLY)
        assert not session.of(Interruption)
        # The backchannel joins the history after the reply it was said over, and starts no turn.
        assert session.history()[-2:] == [
            {"role": "assistant", "content": "".join(REPLY)},
            {"role": "user", "content": "Yeah."},
        ]
        assert len(session.llm.requests) == 1


async def test_words_with_intent_interrupt_and_are_the_next_turn() -> None:
    async with ScriptedSession() as session:
        turn_id = await agent_speaking(session)
        session.llm.replies(REPLY, ["Sure,", " ask", " away."])
        session.asr.speech_started()
        await session.settle()
        session.asr.interim("Wait, I have a question.")
        interruption = await session.next(Interruption)
        assert interruption.turn_id == turn_id
        heard = interruption.heard_text
        assert heard and "".join(REPLY).startswith(heard) and heard != "".join(REPLY)
        interrupted = await session.next(TurnMetrics)
        assert interrupted.turn_id == turn_id and interrupted.interrupted
        session.asr.speech_ended()
        session.asr.final("Wait, I have a question.")
        answer = await session.next(TurnMetrics)
        assert answer.turn_id == turn_id + 1 and not answer.interrupted
        assert session.reply_text(answer.turn_id) == "Sure, ask away."
        # The history keeps what was heard of the cut reply, then the interruption.
        assert session.history()[1:] == [
            {"role": "assistant", "content": heard.strip()},
            {"role": "user", "content": "Wait, I have a question."},
            {"role": "assistant", "content": "Sure, ask away."},
        ]


async def test_the_agents_echo_is_no_user_turn() -> None:
    async with ScriptedSession() as session:
        turn_id = await agent_speaking(session)
        await session.settle(0.6)
        session.asr.speech_started()
        await session.settle()
        session.asr.interim("Take two slow")
        await session.settle()
        session.asr.speech_ended()
        session.asr.final("Take two slow breaths.")
        decision = await session.next(InterruptionDecision)
        assert decision.kind == "echo"
        metrics = await session.next(TurnMetrics, timeout_s=5)
        assert metrics.turn_id == turn_id and not metrics.interrupted
        # Neither the echo's transcript nor a reply to it: one user turn, one agent turn.
        assert [t.text for t in session.of(Transcript) if t.final] == ["How do I calm down before a talk?"]
        assert len(session.llm.requests) == 1
        assert [m["role"] for m in session.history()] == ["user", "assistant"]


async def test_the_first_words_of_a_sentence_keep_the_agent_held() -> None:
    # Issue 24: "I think" is two words that are no acknowledgement: the start of a sentence as often as a
    # backchannel, so the agent's audio stays held (it resumed there, and played over the sentence).
    async with ScriptedSession() as session:
        turn_id = await agent_speaking(session, LONG_REPLY)
        session.asr.speech_started()
        await session.settle()
        held = len(session.audio_sequence(turn_id))
        session.asr.interim("I think")
        await session.settle(1.0)
        assert len(session.audio_sequence(turn_id)) == held
        session.asr.interim("I think the problem is my manager.")
        session.asr.speech_ended()
        session.asr.final("I think the problem is my manager.")
        decision = await session.next(InterruptionDecision)
        assert decision.kind == "interruption" and decision.turn_id == turn_id
        assert (await session.next(Interruption)).turn_id == turn_id


# Issue 24: Whisper ends an acknowledgement cut off by the interim's end with a question mark ("Okay?" of
# "okay, sure"), and that interim interrupted the agent.
@pytest.mark.parametrize(("interim", "final"), [("Right, right.", "Right, right."), ("Okay?", "Okay, sure.")])
async def test_an_acknowledgement_lets_the_held_audio_go_on_before_its_final(interim: str, final: str) -> None:
    async with ScriptedSession() as session:
        turn_id = await agent_speaking(session)
        session.asr.speech_started()
        await session.settle(0.3)
        held = len(session.audio_sequence(turn_id))
        session.asr.interim(interim)
        await session.settle(0.3)
        assert len(session.audio_sequence(turn_id)) > held  # goes on while the final is still to come
        session.asr.speech_ended()
        session.asr.final(final)
        assert (await session.next(InterruptionDecision)).kind == "backchannel"
        assert not session.of(Interruption)


async def test_words_that_read_as_echo_keep_the_agent_held_until_the_signal_or_the_final_says_so() -> None:
    # Issue 24: words that read as the agent's echo went on playing at once, and a sentence said over the
    # echo was decided after the reply had ended. The scripted microphone holds no echo of the agent (its
    # audio is silence), so nothing shows the words to be echo: the audio stays held until the final.
    async with ScriptedSession() as session:
        turn_id = await agent_speaking(session)
        await session.settle(0.3)
        session.asr.speech_started()
        await session.settle()
        session.asr.interim("Take two slow")
        await session.settle(0.3)
        held = len(session.audio_sequence(turn_id))
        await session.settle(0.3)
        assert len(session.audio_sequence(turn_id)) == held
        session.asr.speech_ended()
        session.asr.final("Take two slow breaths.")
        assert (await session.next(InterruptionDecision)).kind == "echo"
        metrics = await session.next(TurnMetrics, timeout_s=5)
        assert metrics.turn_id == turn_id and not metrics.interrupted
        sequence = session.audio_sequence(turn_id)
        assert sequence == list(range(len(sequence)))  # every chunk, in order: nothing lost


async def test_an_echo_whose_words_are_misheard_is_told_by_its_signal() -> None:
    # Issue 24: through a phone's loudspeaker and a room, Whisper writes the agent's echo as words the agent
    # never said ("That is small."): no text check takes it for echo, and it was a user turn. The microphone
    # here holds the agent's audio 100 ms late, 20 dB down, and nothing more: the echo path fit finds it, with
    # nothing left over, so it is the echo whatever its transcript says.
    async with ScriptedSession(echo_db=-20) as session:
        turn_id = await agent_speaking(session, LONG_REPLY)
        await session.settle(0.5)
        session.asr.speech_started()
        await session.settle(0.3)
        session.asr.interim("That is small.")
        await session.settle(0.3)
        session.asr.interim("That is small, the one.")
        await session.settle(0.3)
        session.asr.speech_ended()
        session.asr.final("That is small, the one.")
        await the_echo_alone_went_on(session, turn_id)


async def test_a_sentence_with_no_echo_in_the_microphone_interrupts_at_its_first_words() -> None:
    # Issue 24: words with no intent among them waited for WORDS_MIN_MS (900 ms) of speech and two interims,
    # against Whisper's first guesses at the agent's echo; where the microphone holds no echo of the agent
    # (the path fit finds none), they cannot be its echo, and interrupt at once.
    async with ScriptedSession() as session:
        turn_id = await agent_speaking(session, LONG_REPLY)
        session.asr.speech_started()
        await session.settle(0.1)
        session.asr.interim("I think the problem is my manager")
        decision = await session.next(InterruptionDecision, timeout_s=0.5)
        assert decision.kind == "interruption" and decision.turn_id == turn_id
        assert decision.decision_ms < 600


async def test_over_the_echo_the_users_turn_is_made_from_the_echo_removed_audio() -> None:
    # Issue 24: at -25 dB the user's final was "It's in, how do you marry?": "It's in" was the agent's reply.
    # When the echo is in the microphone, the final of an utterance that interrupted the agent is heard again
    # with the echo removed, and that is the user's turn (the first transcript goes to no one).
    async with ScriptedSession(echo_db=-20) as session:
        session.asr.ends_on_half_close = False  # the echo-removed audio's transcription is scripted below
        turn_id = await agent_speaking(session, LONG_REPLY)
        session.llm.replies(LONG_REPLY, ["Sure."])
        await session.settle(1.2)  # the echo alone, for a while: what its path is fitted on
        session.voice(1.0, rms=1000.0)
        session.asr.speech_started()
        await session.settle(0.3)
        session.asr.interim("Sorry, wait.")
        assert (await session.next(Interruption)).turn_id == turn_id
        await session.settle(0.8)
        calls = len(session.asr.calls)
        session.asr.speech_ended()
        session.asr.final("Take two, sorry, wait.")  # the echo's words with the user's
        await session.until(lambda: len(session.asr.calls) > calls)  # the echo-removed audio, transcribed
        transcribed_again(session, "Sorry, wait.")
        answer = await session.next(TurnMetrics, timeout_s=5)
        while answer.turn_id == turn_id:
            answer = await session.next(TurnMetrics, timeout_s=5)
        finals = [t.text for t in session.of(Transcript) if t.final]
        assert finals == ["How do I calm down before a talk?", "Sorry, wait."]
        assert session.history()[-2:] == [
            {"role": "user", "content": "Sorry, wait."},
            {"role": "assistant", "content": "Sure."},
        ]


async def test_a_fragment_of_the_echo_heard_as_other_words_is_no_user_turn() -> None:
    # Issue 24: through a phone's loudspeaker and a room, a short fragment of the agent's echo came as a final
    # with no interim before it ("I'll curse you."): three words, no acknowledgement, so an interruption and a
    # user turn. A final that would be the user's words is decided on what is left once the echo is removed:
    # here the echo alone (the microphone holds the agent's audio 20 dB down, and nothing more).
    async with ScriptedSession(echo_db=-20) as session:
        turn_id = await agent_speaking(session, LONG_REPLY)
        await session.settle(1.2)
        session.asr.speech_started()
        await session.settle(0.3)
        session.asr.speech_ended()
        session.asr.final("I'll curse you.")
        await the_echo_alone_went_on(session, turn_id)


async def test_a_backchannel_over_the_echo_is_the_users_word_not_the_echos() -> None:
    # Issue 24: "yeah" said over the echo was transcribed with it as "Ask the vet.": an interruption, and the
    # echo's words became the user's. Heard again with the echo removed, it is "Yeah.": a backchannel.
    async with ScriptedSession(echo_db=-20) as session:
        session.asr.ends_on_half_close = False  # the echo-removed audio's transcription is scripted below
        turn_id = await agent_speaking(session, LONG_REPLY)
        await session.settle(1.2)
        session.voice(0.5, rms=1000.0)
        session.asr.speech_started()
        await session.settle(0.6)
        calls = len(session.asr.calls)
        session.asr.speech_ended()
        session.asr.final("Ask the vet.")
        await session.until(lambda: len(session.asr.calls) > calls)
        transcribed_again(session, "Yeah.")
        await the_backchannel_was_kept(session, turn_id, "Yeah.")


async def test_a_user_who_starts_over_an_echo_already_taken_for_the_echo_alone_interrupts() -> None:
    # Issue 24: at -12 dB the VAD hears the agent's loud echo as speech; the signal showed the echo alone and the
    # audio went on; the user then began speaking in the same utterance, and was decided on the residual's level
    # over the whole utterance, mostly the echo's: seconds of agent audio over a sentence that began "Wait".
    async with ScriptedSession(echo_db=-20) as session:
        session.asr.ends_on_half_close = False  # the echo-removed audio's transcription is scripted below
        turn_id = await agent_speaking(session, [*LONG_REPLY, *LONG_REPLY])
        await session.settle(1.2)
        session.asr.speech_started()  # the echo, to the VAD
        for _ in range(5):  # 2.5 s of the echo alone, an interim every half second, each checked
            await session.settle(0.5)
            session.asr.interim("Open with the shore.")
        sent = len(session.audio_sequence(turn_id))
        await session.until(lambda: len(session.audio_sequence(turn_id)) > sent)  # the echo alone: it goes on
        session.voice(2.0, rms=370.0)  # about as loud as the echo: the user speaks over it
        await session.settle(1.0)
        calls = len(session.asr.calls)
        session.asr.interim("Open with the shore, I think the problem is my manager.")
        await session.until(lambda: len(session.asr.calls) > calls)  # more than the echo: transcribed again
        sent = len(session.audio_sequence(turn_id))
        await session.settle(0.3)
        assert len(session.audio_sequence(turn_id)) == sent  # held while that check decides
        again = session.asr.calls[-1]
        again.push(asr_pb2.RecognizeResponse(final=asr_pb2.Transcript(text="I think the problem is my manager.")))
        again.push(None)
        assert (await session.next(Interruption)).turn_id == turn_id


async def test_words_over_the_echo_wait_for_the_signal_check_in_flight() -> None:
    # Issue 24: words with no intent interrupted once 900 ms of speech and two interims had passed, even while
    # the check of the signal, which would have shown them to be the echo's words, was still running ("Open with
    # the sh..." for the echo of "Open with a short story", an interruption at 1023 ms). They wait for it now.
    async with ScriptedSession(echo_db=-20) as session:
        session.asr.ends_on_half_close = False  # the echo-removed audio's transcriptions are scripted below
        turn_id = await agent_speaking(session, [*LONG_REPLY, *LONG_REPLY])
        await session.settle(1.2)
        session.voice(0.6, rms=1000.0)  # a "yeah" over the echo
        session.asr.speech_started()
        await session.settle(0.3)
        calls = len(session.asr.calls)
        session.asr.interim("Open with the shore.")
        await session.until(lambda: len(session.asr.calls) > calls)  # more than the echo: being transcribed
        await session.settle(0.7)
        session.asr.interim("Open with the shore, the show.")
        await session.settle(0.2)
        session.asr.interim("Open with the shore, the show.")  # 900 ms and two interims: the words alone settle
        await session.settle(0.2)
        assert not session.of(InterruptionDecision)
        check = session.asr.calls[-1]
        check.push(asr_pb2.RecognizeResponse(final=asr_pb2.Transcript(text="Yeah.")))
        check.push(None)
        await session.settle(0.1)
        session.asr.speech_ended()
        session.asr.final("Open with the shore, the show, yeah.")
        decision = await session.next(InterruptionDecision)  # the signal heard an acknowledgement: no more checks
        assert decision.kind == "backchannel" and decision.turn_id == turn_id and decision.text == "Yeah."
        assert not session.of(Interruption)


async def acknowledged_over_the_echo(session: ScriptedSession, turn_id: int) -> None:
    """The user's "okay, sure" over the echo, 1.2 s into the reply, heard again as "Okay, sure.": it goes on."""
    await session.settle(1.2)
    session.voice(0.4, rms=1000.0)
    session.asr.speech_started()
    await session.settle(0.5)
    calls = len(session.asr.calls)
    session.asr.interim("Okay, sure.")
    await session.until(lambda: len(session.asr.calls) > calls)  # more than the echo: transcribed again
    transcribed_again(session, "Okay, sure.")
    sent = len(session.audio_sequence(turn_id))
    await session.until(lambda: len(session.audio_sequence(turn_id)) > sent)  # an acknowledgement: it goes on


async def test_an_acknowledgement_heard_over_the_echo_stays_one_while_the_echo_goes_on() -> None:
    # Issue 24: "okay, sure" said over the echo was heard again as "Okay, sure", and the audio went on; but the VAD
    # heard the loud echo after it as more of the same utterance, and the residual of the whole utterance, the
    # echo's leftovers transcribed with it, grew into "Okay, sure. We will rest, and we heard your first minute":
    # an interruption, 4.7 s in. Once the signal heard an acknowledgement, the words decide nothing and each
    # check hears only what came after it: here the echo alone.
    async with ScriptedSession(echo_db=-20) as session:
        session.asr.ends_on_half_close = False  # the echo-removed audio's transcriptions are scripted below
        turn_id = await agent_speaking(session, [*LONG_REPLY, *LONG_REPLY])
        await acknowledged_over_the_echo(session, turn_id)
        calls = len(session.asr.calls)
        for _ in range(4):  # the echo after it, to the VAD the same utterance
            await session.settle(0.5)
            session.asr.interim("Okay, sure. We will rest, and we heard your first minute")
        await session.settle(0.3)
        assert len(session.asr.calls) == calls, "the echo alone after the acknowledgement is not transcribed again"
        assert not session.of(InterruptionDecision)
        session.asr.speech_ended()
        session.asr.final("Okay, sure. We will rest, and we heard your first minute until it feels easy.")
        await the_backchannel_was_kept(session, turn_id, "Okay, sure.")


async def test_a_user_who_goes_on_after_an_acknowledgement_over_the_echo_interrupts() -> None:
    async with ScriptedSession(echo_db=-20) as session:
        session.asr.ends_on_half_close = False  # the echo-removed audio's transcriptions are scripted below
        session.llm.replies([*LONG_REPLY, *LONG_REPLY], ["Tell", " me", " more."])
        session.tts.ms_per_char = 40.0
        await session.user_says("How do I calm down before a talk?")
        turn_id = (await session.next(AgentAudio)).turn_id
        await acknowledged_over_the_echo(session, turn_id)
        session.voice(1.5, rms=1000.0)  # "..., but I think my manager is the problem"
        calls = len(session.asr.calls)
        for _ in range(3):
            await session.settle(0.3)
            session.asr.interim("Okay, sure. But I think my")
            if len(session.asr.calls) > calls:
                break
        await session.until(lambda: len(session.asr.calls) > calls)  # what followed it: more than the echo
        transcribed_again(session, "But I think my manager")
        assert (await session.next(Interruption)).turn_id == turn_id
        # The check heard the sentence's start; the user's turn is all of it, heard again with the echo removed.
        calls = len(session.asr.calls)
        session.asr.speech_ended()
        session.asr.final("Okay, sure. Take two. But I think my manager is the problem.")
        await session.until(lambda: len(session.asr.calls) > calls)
        transcribed_again(session, "Okay, sure. But I think my manager is the problem.")
        answer = await session.next(TurnMetrics, timeout_s=8)
        while answer.turn_id == turn_id:
            answer = await session.next(TurnMetrics, timeout_s=8)
        said = "Okay, sure. But I think my manager is the problem."
        assert [t.text for t in session.of(Transcript) if t.final][1:] == [said]
        assert session.history()[-2:] == [
            {"role": "user", "content": said},
            {"role": "assistant", "content": "Tell me more."},
        ]


async def test_the_echo_is_matched_against_the_reply_as_sent_not_only_as_played() -> None:
    # Issue 24: Whisper guesses at a word of the echo from the words around it: "Open with the sh-" for the echo
    # of "Open with a short", the client having played only that far. Against the words played so far it was
    # no echo, and interrupted; against the reply as sent to be spoken ("... to the audience") it is.
    async with ScriptedSession() as session:
        turn_id = await agent_speaking(session, LONG_REPLY)
        session.asr.speech_started()
        await session.settle(0.1)
        session.asr.speech_ended()
        session.asr.final("Then look at one friendly face.")  # words the client has not played yet
        decision = await session.next(InterruptionDecision)
        assert decision.kind == "echo" and decision.turn_id == turn_id
        assert not session.of(Interruption)


async def test_a_preface_keeps_the_agent_held_for_the_sentence_it_opens(monkeypatch: pytest.MonkeyPatch) -> None:
    # Issue 24: "Oh, [pause] I'm originally from Chicago also.": "Oh" ended an utterance of its own, a
    # backchannel, and the agent's audio went on, its whole lead sent again, over the rest of the sentence.
    monkeypatch.setattr(overlap, "PREFACE_GRACE_MS", 2000.0)  # the sentence goes on within it, on a loaded machine too
    async with ScriptedSession() as session:
        turn_id = await agent_speaking(session, LONG_REPLY)
        session.asr.speech_started()
        await session.settle(0.1)
        held = len(session.audio_sequence(turn_id))
        session.asr.interim("Oh.")
        await session.settle(0.1)
        session.asr.speech_ended()
        session.asr.final("Oh.")
        assert (await session.next(InterruptionDecision)).kind == "backchannel"
        await session.settle(0.3)
        session.asr.speech_started()
        await session.settle(0.2)
        session.asr.interim("I'm originally from Chicago")
        assert (await session.next(Interruption)).turn_id == turn_id
        assert len(session.audio_sequence(turn_id)) == held  # nothing more was sent over the sentence


async def test_a_preface_alone_lets_the_agent_go_on_after_a_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(overlap, "PREFACE_GRACE_MS", 1500.0)  # well past the check below, on a loaded machine too
    async with ScriptedSession() as session:
        turn_id = await agent_speaking(session, LONG_REPLY)
        session.asr.speech_started()
        await session.settle(0.1)
        held = len(session.audio_sequence(turn_id))
        session.asr.speech_ended()
        session.asr.final("Um.")
        assert (await session.next(InterruptionDecision)).kind == "backchannel"
        await session.settle(0.3)
        assert len(session.audio_sequence(turn_id)) == held
        await session.until(lambda: len(session.audio_sequence(turn_id)) > held)
        metrics = await session.next(TurnMetrics, timeout_s=8)
        assert metrics.turn_id == turn_id and not metrics.interrupted
        sequence = session.audio_sequence(turn_id)
        assert sequence == list(range(len(sequence)))  # nothing lost


async def test_an_asr_failure_mid_turn_is_reported_and_the_next_turn_works() -> None:
    async with ScriptedSession() as session:
        turn_id = await agent_speaking(session)
        session.asr.fail()
        error = await session.next(Error)
        assert error.code == "UNAVAILABLE" and error.backend == "asr"
        await session.asr.stream_opened(2)  # the Listener reconnected
        metrics = await session.next(TurnMetrics, timeout_s=5)
        assert metrics.turn_id == turn_id and not metrics.interrupted  # the agent's turn went on
        await session.until(lambda: session.asr.call.received_ms > 40)  # the audio flows to the new stream
        session.llm.replies(["Good", " question."])
        await session.user_says("And after the talk?")
        answer = await session.next(TurnMetrics)
        assert answer.turn_id == turn_id + 1 and session.reply_text(answer.turn_id) == "Good question."


async def test_typed_text_during_speech_is_answered_and_so_is_the_speech() -> None:
    async with ScriptedSession() as session:
        session.llm.replies(["Typed", " answer."], ["Spoken", " answer."])
        session.asr.speech_started()
        await session.settle()
        session.send(TextIn("What about slides?"))
        typed = await session.next(TurnMetrics)
        assert session.reply_text(typed.turn_id) == "Typed answer."
        session.asr.speech_ended()
        session.asr.final("And my voice?")
        spoken = await session.next(TurnMetrics)
        assert spoken.turn_id == typed.turn_id + 1 and session.reply_text(spoken.turn_id) == "Spoken answer."
        assert [m["content"] for m in session.history() if m["role"] == "user"] == [
            "What about slides?",
            "And my voice?",
        ]


async def test_the_drain_waits_for_the_turn_in_flight_then_ends_the_conversation() -> None:
    async with ScriptedSession() as session:
        gate = asyncio.Event()
        session.llm.replies(ScriptedReply(["Almost", " done."], gate))
        await session.user_says("One more thing?")
        session.draining.set()
        await session.settle(0.3)
        assert not session.task.done()  # a turn is in flight: the drain waits for a moment of rest
        gate.set()
        metrics = await session.next(TurnMetrics)
        assert session.reply_text(metrics.turn_id) == "Almost done."
        with pytest.raises(Draining):
            async with asyncio.timeout(3):
                await session.task


async def played(session: ScriptedSession, turn_id: int, ms: float) -> None:
    """Until the turn has sent ``ms`` of audio (the scripted TTS: 16 kHz PCM16)."""
    await session.until(lambda: sum(len(e.audio) for e in session.of(AgentAudio) if e.turn_id == turn_id) >= ms * 32)


async def test_a_truncation_keeps_the_text_of_the_audio_the_client_played() -> None:
    async with ScriptedSession() as session:
        turn_id = await agent_speaking(session)
        await played(session, turn_id, 600)
        session.send(CancelReply())
        gateway_heard = (await session.next(Interruption)).heard_text
        # 40 ms a character: "Take" 0-160 ms, " two" 160-320, " slow" 320-520; at 400 ms the client was
        # in "slow": the word in progress counts as heard.
        session.send(Truncate(turn_id, 400))
        truncated = await session.next(Truncated)
        assert truncated == Truncated(turn_id, 400, "Take two slow")
        assert session.history()[-1] == {"role": "assistant", "content": "Take two slow"}
        assert gateway_heard != "Take two slow"  # the client's measure replaced the gateway's estimate
        session.send(Truncate(turn_id, 0))  # nothing played: the reply leaves the history
        assert (await session.next(Truncated)).heard_text == ""
        assert session.history() == [{"role": "user", "content": "How do I calm down before a talk?"}]


async def test_a_truncation_of_the_reply_in_flight_interrupts_it() -> None:
    async with ScriptedSession(barge_in=False) as session:
        turn_id = await agent_speaking(session)
        await played(session, turn_id, 300)
        session.send(Truncate(turn_id, 240))  # in " two": heard, in part
        interruption = await session.next(Interruption)
        truncated = await session.next(Truncated)
        assert interruption.turn_id == truncated.turn_id == turn_id
        assert truncated.heard_text == "Take two"
        assert session.history()[-1] == {"role": "assistant", "content": "Take two"}
        assert [m.interrupted for m in session.of(TurnMetrics)] == [True]


async def test_a_bad_truncation_is_an_error_and_the_conversation_goes_on() -> None:
    async with ScriptedSession() as session:
        session.llm.replies(["Start", " with", " a", " story."])
        await session.user_says("How do I start my talk?")
        metrics = await session.next(TurnMetrics)
        session.send(Truncate(metrics.turn_id + 5, 10))
        unknown = await session.next(Error)
        assert unknown.code == "INVALID_ARGUMENT" and f"no agent turn {metrics.turn_id + 5}" in unknown.message
        session.send(Truncate(metrics.turn_id, 60_000))
        too_long = await session.next(Error)
        assert too_long.code == "INVALID_ARGUMENT" and "past the" in too_long.message
        assert session.history()[-1] == {"role": "assistant", "content": "Start with a story."}
        assert not session.of(Truncated)
