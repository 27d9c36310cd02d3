"""The interruption decision (gateway/turn_taking): typed cases, no models."""

from __future__ import annotations

import pytest

from gateway.turn_taking import (
    WORDS_MIN_MS,
    InterruptionDecider,
    Kind,
    Lexicon,
    Techniques,
    decide_over_echo,
    en,
    is_echo,
    only_acknowledgements,
    only_prefaces,
    without_echo_phrases,
    words,
)

pytestmark = pytest.mark.unit  # no model, no service: make test-unit

AGENT = (
    "Feeling nervous before an interview is normal. Prepare three short stories about your work,"
    " and practise them out loud so they feel natural."
)


@pytest.mark.parametrize("phrase", en.BACKCHANNELS)
def test_each_backchannel_does_not_interrupt(phrase: str) -> None:
    decider = InterruptionDecider()
    said = phrase.capitalize() + "."
    assert decider.heard(said, AGENT).kind is Kind.BACKCHANNEL
    assert not decider.decision.final  # the user may go on: "yeah, but ..."
    final = decider.ended(said, AGENT)
    assert final.kind is Kind.BACKCHANNEL and final.final


@pytest.mark.parametrize("said", ["Mm-hmm.", "Uh-huh", "yeah, yeah", "Okay, I see.", "Right, right.", "Got it, sure"])
def test_repeated_and_combined_backchannels(said: str) -> None:
    assert InterruptionDecider().classify(said, AGENT) is Kind.BACKCHANNEL


@pytest.mark.parametrize("phrase", en.INTENTS)
def test_each_intent_word_interrupts_alone(phrase: str) -> None:
    decision = InterruptionDecider().heard(phrase, AGENT)
    assert decision.kind is Kind.INTERRUPTION and decision.final


@pytest.mark.parametrize(
    "said",
    [
        "Wait.",
        "Stop!",
        "No.",
        "Hold on.",
        "Sorry, but",
        "Excuse me",
        "Yes?",
        "Okay?",
        "Yeah, but what about salary?",
        "Right, no",
        "Tell me more about the first one",
        "I disagree",
    ],
)
def test_intents_and_questions_interrupt(said: str) -> None:
    assert InterruptionDecider().classify(said, AGENT) is Kind.INTERRUPTION


@pytest.mark.parametrize(("interim", "final"), [("Okay?", "Okay, sure."), ("Yes?", "Yes, yes"), ("Right?", "Right.")])
def test_an_interim_of_acknowledgements_marked_as_a_question_is_no_question(interim: str, final: str) -> None:
    """Issue 24: Whisper ends an acknowledgement cut off by the interim's end with a question mark ("Okay?" of
    Kokoro's "okay, sure"), and 4 of 20 backchannels with no echo interrupted on it. The final decides."""
    decider = InterruptionDecider()
    decision = decider.heard(interim, AGENT, speech_ms=WORDS_MIN_MS + 100)
    assert decision.kind is Kind.BACKCHANNEL and not decision.final
    assert decider.ended(final, AGENT).kind is Kind.BACKCHANNEL
    assert InterruptionDecider().ended(interim, AGENT).interrupts  # asked, as the final: a question
    assert InterruptionDecider().classify("Really?", AGENT, interim=True) is Kind.INTERRUPTION  # no acknowledgement


def test_an_acknowledgement_marked_as_a_question_over_the_echo_is_no_question_while_it_goes_on() -> None:
    assert decide_over_echo("Okay?", AGENT, interim=True).kind is Kind.BACKCHANNEL
    assert decide_over_echo("Okay?", AGENT).interrupts


def test_a_backchannel_that_goes_on_becomes_an_interruption() -> None:
    decider = InterruptionDecider()
    assert decider.heard("Yeah", AGENT).kind is Kind.BACKCHANNEL
    assert decider.heard("Yeah, but wait", AGENT).interrupts
    assert decider.ended("Yeah, but wait, I have a question", AGENT).interrupts  # decided once: it stays


@pytest.mark.parametrize("final", ["", "  ", "...", "-"])
def test_no_words_is_noise(final: str) -> None:
    decider = InterruptionDecider()
    assert decider.heard(final, AGENT).pending
    decision = decider.ended(final, AGENT)
    assert decision.kind is Kind.NOISE and decision.final


@pytest.mark.parametrize(
    "said",
    [
        "Feeling nervous before an interview is normal.",
        "prepare three short stories about your work",
        "Practice them out loud so they feel natural.",  # Whisper's spelling, not the agent's
        "stories about you work and practise",
    ],
)
def test_the_agents_own_words_are_echo(said: str) -> None:
    decision = InterruptionDecider().ended(said, AGENT)
    assert decision.kind is Kind.ECHO and not decision.interrupts


def test_echo_needs_most_words_to_match() -> None:
    assert not is_echo("Wait, what about my salary, is that normal?", AGENT)
    assert not is_echo("work", AGENT)  # one short word matches by chance
    assert is_echo("normal", "Normal.")  # unless the agent said little more
    calmly = "Ask to finish your point, calmly, then talk to your manager about it one to one."
    assert is_echo("Comly.", calmly)  # a lone long word, misheard: Whisper on the echo of "calmly"
    assert not is_echo("Comfortable.", calmly) and not is_echo("Yeah.", calmly)
    assert not is_echo("Sorry.", "Open with a short story.")  # an intent word is the user's, however near
    assert is_echo("Please.", "Say it, please.")  # unless the agent said it
    assert not is_echo("", AGENT)


def test_an_interruption_over_the_echo_interrupts() -> None:
    """The user speaks over the agent's echo: the transcript mixes both, and its own words win."""
    mixed = "Prepare three short stories. Wait, stop, I have a different question about money."
    assert InterruptionDecider().classify(mixed, AGENT) is Kind.INTERRUPTION


def test_techniques_switch_off() -> None:
    no_backchannels = InterruptionDecider(Techniques(backchannels=False))
    assert no_backchannels.classify("yeah", AGENT) is Kind.INTERRUPTION
    no_echo = InterruptionDecider(Techniques(echo=False))
    assert no_echo.classify("prepare three short stories about your work", AGENT) is Kind.INTERRUPTION


def test_words_and_lexicon() -> None:
    assert words("Mm-hmm, OK. I'm sure!") == ["mm", "hmm", "ok", "i'm", "sure"]
    lexicon = Lexicon("xx")  # an unknown language falls back to English
    assert lexicon.only_backchannels(["i", "see", "yeah"])
    assert not lexicon.only_backchannels(["i", "see", "why"])
    assert lexicon.has_intent(["well", "hold", "on"])
    assert not set(map(tuple, map(words, en.BACKCHANNELS))) & set(map(tuple, map(words, en.INTENTS)))


@pytest.mark.parametrize("said", ["I'm close.", "And likely.", "Unclores.", "Thank you."])
def test_two_words_with_no_intent_are_a_backchannel(said: str) -> None:
    """Whisper's spellings of espeak's "I see", "exactly", "of course" over the agent; a noise heard as words."""
    assert InterruptionDecider().ended(said, AGENT).kind is Kind.BACKCHANNEL


@pytest.mark.parametrize("said", ["Stop.", "No way.", "Hey!", "Really?", "Not now", "I disagree", "it back please"])
def test_short_words_with_intent_or_three_words_interrupt(said: str) -> None:
    assert InterruptionDecider().ended(said, AGENT).interrupts


def test_early_interims_decide_only_on_a_leading_intent() -> None:
    """Whisper's first guess at a fraction of a second of the agent's echo ("Bye.", "I can't wait.") does not
    interrupt; a leading intent does at once; other words once the speech has lasted WORDS_MIN_MS, two interims
    in a row."""
    decider = InterruptionDecider()
    early = decider.heard("Bye.", AGENT, speech_ms=220)
    assert early.kind is Kind.BACKCHANNEL and not early.final  # one word, no intent: the audio may go on
    assert decider.heard("I can't wait.", AGENT, speech_ms=450) == early  # a guess with no leading intent: kept
    fresh = InterruptionDecider()
    assert fresh.heard("I'll be able to interview", AGENT, speech_ms=WORDS_MIN_MS).pending  # one guess: not yet
    assert fresh.heard("I'll be able to interview next", AGENT, speech_ms=WORDS_MIN_MS + 220).interrupts  # two
    for said in ("Wait", "No, that's", "Yeah, but", "Sorry, I", "What do you"):
        assert InterruptionDecider().heard(said, AGENT, speech_ms=200).interrupts, said


def test_an_interruption_the_signal_is_to_confirm_stays_provisional() -> None:
    """Over the echo the signal decides: words that settled say so, provisionally, until a check of the
    echo-removed audio confirms them. A leading intent interrupts at once all the same."""
    decider = InterruptionDecider()
    said = "I think the problem is my manager"
    decider.heard(said, AGENT, speech_ms=WORDS_MIN_MS, signal_decides=True)
    decision = decider.heard(said, AGENT, speech_ms=WORDS_MIN_MS + 220, signal_decides=True)
    assert decision.interrupts and not decision.final
    assert decider.ended("Yeah.", AGENT).kind is Kind.BACKCHANNEL  # nothing was decided: the final decides
    assert InterruptionDecider().heard("Sorry, I", AGENT, speech_ms=200, signal_decides=True).final


@pytest.mark.parametrize(
    ("heard", "agent"),
    [
        # Whisper's transcripts of an intent said over the first reply's echo (bench-turns, echo + intent)
        (
            "That is what do you need to do next calm take too slow breaths and rehearse your first minute",
            "That is normal. Take two slow breaths and rehearse your first minute until it feels easy.",
        ),
        (
            "Okay, don't do your story that shows why your topic matters to the audience.",
            "Open with a short story that shows why your topic matters to the audience.",
        ),
    ],
)
def test_an_intent_inside_the_echo_is_the_user_over_it(heard: str, agent: str) -> None:
    assert not is_echo(heard, agent)
    assert InterruptionDecider().ended(heard, agent).interrupts


@pytest.mark.parametrize(
    "heard",
    [
        "That is normal, take two slow breaths and rehearse your first minute until it feels easy.",
        "That is didn't use me take too slow breaths and rehearse your first minute",  # no intent in the run
        "That is normal. Take it.",
    ],
)
def test_echo_with_misheard_words_but_no_intent_stays_echo(heard: str) -> None:
    assert is_echo(heard, "That is normal. Take two slow breaths and rehearse your first minute until it feels easy.")


def test_an_echo_that_the_user_speaks_over_is_no_longer_echo() -> None:
    assert is_echo("prepare three short stories about your work", AGENT)
    assert not is_echo("prepare three short stories about your work I want a different topic", AGENT)


def test_turn_taking_settings_per_gateway_and_per_session() -> None:
    from gateway.config import GatewayConfig
    from gateway.session_settings import session_settings
    from voice_agent.client.converse import session_config
    from voice_agent.v1 import gateway_pb2

    config = GatewayConfig()
    on = session_settings(gateway_pb2.ConverseRequest(config=session_config(16_000)), config)
    assert on.turn_taking.interruption_decision and on.turn_taking.backchannels and on.turn_taking.echo_rejection
    assert not on.recognition.HasField("interim_interval_ms")  # frequent interims only while the agent speaks
    options = gateway_pb2.TurnTakingOptions(interruption_decision=False, echo_rejection=False)
    chosen = session_settings(gateway_pb2.ConverseRequest(config=session_config(16_000, turn_taking=options)), config)
    assert not chosen.turn_taking.interruption_decision and not chosen.turn_taking.echo_rejection
    assert chosen.turn_taking.backchannels  # unset: the gateway's
    config.turn_taking.backchannel_words = False
    off = session_settings(gateway_pb2.ConverseRequest(config=session_config(16_000)), config)
    assert not off.turn_taking.techniques.backchannels


@pytest.mark.parametrize("said", ["Yeah.", "Right, right.", "Mm-hmm.", "okay, sure", "Yeah, yeah."])
def test_acknowledgements_alone_let_the_held_audio_go_on(said: str) -> None:
    assert only_acknowledgements(said)


@pytest.mark.parametrize("said", ["I think", "Oh, Diane.", "Yeah, but", "Okay then", ""])
def test_other_short_words_may_start_a_sentence(said: str) -> None:
    # Two words with no intent are a backchannel at the final (SHORT_WORDS), but as a first interim they may
    # be a sentence's start: the held audio waits (gateway/overlap.py).
    assert not only_acknowledgements(said)


@pytest.mark.parametrize("said", ["I'm M.H.", "I'm M-H.", "M.A. change."])
def test_letters_spelt_one_by_one_are_one_word(said: str) -> None:
    # Issue 24: Whisper spells Kokoro's "mm-hm" over the agent as letters: three words by the spaces, so an
    # interruption; a hum spelt as letters (or an abbreviation spelt out) is one word said.
    assert InterruptionDecider().ended(said, AGENT).kind is Kind.BACKCHANNEL
    assert words("I'm M.H.H.") == ["i'm", "mhh"] and words("I see") == ["i", "see"]


@pytest.mark.parametrize(("said", "preface"), [("Oh.", True), ("Um, well", True), ("Yeah.", False), ("", False)])
def test_prefaces_are_words_that_often_open_a_turn(said: str, preface: bool) -> None:
    assert only_prefaces(said) is preface


ECHOED = "Ask to finish your point, calmly. Open with a short story that shows why your topic matters to the audience."


@pytest.mark.parametrize(
    ("heard", "kind", "said"),
    [
        ("Open with the shoe.", Kind.ECHO, None),  # "uh-huh" over "Open with a short story": what is left of it
        ("Open with a short story.", Kind.ECHO, None),
        ("Open with a- Can I stop you, Dale?", Kind.INTERRUPTION, "Can I stop you, Dale?"),
        ("Open with what?", Kind.INTERRUPTION, "What?"),
        ("Yeah.", Kind.BACKCHANNEL, "Yeah."),
        ("Open with it. Yeah.", Kind.ECHO, None),  # no interruption: "it" is no acknowledgement, so all goes
        ("Neither did I.", Kind.INTERRUPTION, "Neither did I."),  # one word of the agent's alone is the user's
    ],
)
def test_the_agents_phrases_left_in_the_echo_removed_audio_are_not_the_users(
    heard: str, kind: Kind, said: str | None
) -> None:
    # Issue 24: fitted through a phone's loudspeaker and a room, the echo path leaves some of the echo, and the
    # echo-removed audio's transcript still holds the agent's words: a backchannel became an interruption, and
    # the echo's words the user's.
    decision = decide_over_echo(heard, ECHOED)
    assert decision.kind is kind and decision.final
    if said is not None:
        assert decision.text == said
    assert without_echo_phrases("I see", ECHOED) == ("I see", False)
