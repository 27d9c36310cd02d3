"""Turn-taking over the agent's speech: is speech that starts while the agent talks an interruption?

An ``InterruptionDecider`` is fed one utterance that began over the agent (its speech start, each interim or
pause transcript, its final) and the agent's recent words; it answers with a typed ``Decision``:

- ``interruption``: words with intent ("wait", "no", a question, anything that is not an acknowledgement);
- ``backchannel``: only acknowledgements ("mm-hmm", "yeah, right"), or at most SHORT_WORDS words with no
  intent: the agent goes on, the words join the history as the user's without starting a turn;
- ``noise``: the utterance ended with no words (a cough, a knock);
- ``echo``: its words repeat what the agent just said (its own voice through the user's speaker).

Whisper's first interims of an utterance are often wrong (a fraction of a second of audio: "Bye.", "I can't
wait." for the agent's own echo), so an interim decides an interruption at once only when it *starts* with
an intent ("wait", "no, ...", "sorry, but", a question word; after acknowledgements at most: "yeah, but");
other words decide it once the speech has lasted ``WORDS_MIN_MS`` and two interims in a row were neither
acknowledgements nor echo, or at the final transcript.

Until it decides, ``pending`` (no words yet) or a provisional kind (an interim said "yeah" or repeated the
agent: the agent's audio may go on, but a later transcript can still make it an interruption) is
returned; a final transcript always decides. Pure logic: no clock of its own, no models, no I/O.
The word lists live per language in this package (en.py).
"""

from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass
from enum import Enum

from gateway.turn_taking import en

LANGUAGES = {"en": en}
_NOT_WORD = re.compile(r"[^\w\s']+")


class Kind(Enum):
    INTERRUPTION = "interruption"
    BACKCHANNEL = "backchannel"
    NOISE = "noise"
    ECHO = "echo"


@dataclass(frozen=True)
class Techniques:
    """Which checks run; each switchable per gateway and per session."""

    backchannels: bool = True
    echo: bool = True


@dataclass(frozen=True)
class Decision:
    kind: Kind | None  # None: no words yet (pending)
    final: bool  # False: provisional, a later transcript may change it
    text: str = ""

    @property
    def pending(self) -> bool:
        return self.kind is None

    @property
    def interrupts(self) -> bool:
        return self.kind is Kind.INTERRUPTION


PENDING = Decision(None, final=False)

#: Speech an interim must have heard before words without a leading intent decide an interruption.
WORDS_MIN_MS = 900.0
#: How long after a backchannel of prefaces alone ("Oh.", "Um.": en.PREFACES) the held audio waits for more
#: speech before it goes on: a sentence's start, then a pause ("Oh, [400 ms] I'm originally from Chicago")
#: otherwise played the agent's reply, its whole lead refilled, over the rest of it.
PREFACE_GRACE_MS = 600.0
#: Speech over the agent that reads as its echo is heard again with the echo removed (gateway/echo/path.py)
#: after this much of it, and again each time this much more has passed: enough of the echo
#: to fit its path, and of a short interruption said as it began.
OVER_ECHO_CHECK_MS = 1000.0
#: Once a check heard an acknowledgement over the echo, what follows it is checked this often: enough audio to
#: tell the echo alone from "..., but" and the words after it.
ACKNOWLEDGED_CHECK_MS = 500.0
#: Words at most that, with no intent among them and no question, count as a backchannel whatever they are:
#: Whisper spells a short acknowledgement over the agent's voice as anything ("I see" as "I'm close."), and
#: two words with no intent do not take the turn (Pipecat and LiveKit interrupt on a word count too).
SHORT_WORDS = 2
#: Share of an utterance's words found, in order, in the agent's recent words for it to be echo.
ECHO_OVERLAP = 0.6
#: Words the agent said most recently that an echo may repeat.
ECHO_WINDOW_WORDS = 80


def words(text: str) -> list[str]:
    """Lower case words, punctuation dropped; hyphenated ones split ("mm-hmm": "mm", "hmm"); letters spelt
    one by one are one word ("M.H.", "M-H": "mh"): Whisper spells a hum it cannot place as letters (Kokoro's
    "mm-hm" over the agent as "I'm M.H."), and an abbreviation spelt out is one word said."""
    said: list[str] = []
    spelling = False  # the last word is letters spelt one by one, so far
    for token in _NOT_WORD.sub(" ", text.lower().replace("-", " ")).split():
        letter = len(token) == 1 and token.isalpha()
        if letter and said and (spelling or (len(said[-1]) == 1 and said[-1].isalpha())):
            said[-1] += token
            spelling = True
        else:
            said.append(token)
            spelling = False
    return said


#: Words Whisper writes for one another when it hears the agent's voice: one spelling each, for echo.
_HOMOPHONES = {
    w: group[0]
    for group in (
        ("two", "to", "too"),
        ("four", "for"),
        ("their", "there", "they're"),
        ("your", "you're"),
        ("its", "it's"),
        ("know", "no"),
        ("bye", "by", "buy"),
        ("one", "won"),
        ("eight", "ate"),
        ("right", "write"),
        ("practise", "practice"),
    )
    for w in group
}


def _sounds(said: list[str]) -> list[str]:
    return [_HOMOPHONES.get(w, w) for w in said]


class Lexicon:
    """One language's backchannel and intent phrases, as word tuples."""

    def __init__(self, language: str = "en") -> None:
        module = LANGUAGES.get(language, en)
        self.backchannels = {tuple(words(p)) for p in module.BACKCHANNELS}
        self.intents = {tuple(words(p)) for p in module.INTENTS}
        self.prefaces = set(module.PREFACES)
        self._longest = max(len(p) for p in self.backchannels | self.intents)

    def leading_intent(self, said: list[str]) -> bool:
        """Whether ``said`` starts with an intent, after acknowledgements at most ("yeah, but wait")."""
        i = self._after_backchannels(said)
        return any(tuple(said[i : i + n]) in self.intents for n in range(1, self._longest + 1) if i + n <= len(said))

    def has_intent(self, said: list[str]) -> bool:
        return any(
            tuple(said[i : i + n]) in self.intents for n in range(1, self._longest + 1) for i in range(len(said))
        )

    def only_backchannels(self, said: list[str]) -> bool:
        """Whether ``said`` splits wholly into backchannel phrases (longest first)."""
        return bool(said) and self._after_backchannels(said) == len(said)

    def _after_backchannels(self, said: list[str]) -> int:
        """Where the leading run of backchannel phrases in ``said`` ends (longest phrase first)."""
        i = 0
        while i < len(said):
            for n in range(min(self._longest, len(said) - i), 0, -1):
                if tuple(said[i : i + n]) in self.backchannels:
                    i += n
                    break
            else:
                return i
        return i


def echo_overlap(said: list[str], agent: list[str]) -> float:
    """The share of ``said`` that matches the agent's words in order (difflib's longest matches),
    with near-misses of one word ("gonna" for "going") counted through a fuzzy per-word match."""
    if not said or not agent:
        return 0.0
    matcher = difflib.SequenceMatcher(None, said, agent, autojunk=False)
    matched = sum(block.size for block in matcher.get_matching_blocks())
    if matched < len(said):  # Whisper mishears an echo's words: count close ones
        agent_set = set(agent)
        matched = max(matched, sum(1 for w in said if _matches(w, agent_set)))
    return matched / len(said)


#: Words at the end of a transcript that the agent did not say: the user speaking over its echo.
ECHO_TAIL_WORDS = 3


#: How close a misheard word must be to one of the agent's (difflib's ratio) to count as its echo.
WORD_CUTOFF = 0.75
#: The same for a transcript of one word alone ("Comly." for "calmly": 0.73).
LONE_WORD_CUTOFF = 0.7


def _matches(word: str, agent_set: set[str], cutoff: float = WORD_CUTOFF) -> bool:
    return word in agent_set or bool(difflib.get_close_matches(word, agent_set, n=1, cutoff=cutoff))


def is_echo(text: str, agent_text: str, language: str = "en") -> bool:
    """Whether ``text`` repeats the agent's recent words: most of its words in the last ECHO_WINDOW_WORDS,
    and neither ending in words of the user's own nor holding an intent among them (someone speaking over
    the echo: "That is what do you need to do next ... take two slow breaths" for "what do you mean?"
    said over "That is normal. Take two slow breaths ...")."""
    said = _sounds(words(text))
    agent = _sounds(words(agent_text)[-ECHO_WINDOW_WORDS:])
    if not said:
        return False
    agent_set = set(agent)
    if len(said) == 1 and len(agent) > 3:
        # One short word alone matches by chance too easily, unless the agent's words are that few. A longer one
        # is echo if it is close to one of the agent's, closer-misheard than in a sentence ("Comly." for
        # "calmly"): mistaking a lone word of the user's for echo costs at most a backchannel. Not an intent
        # word that is not the agent's own: "Sorry," said over "... a short story" is the user's.
        if said[0] not in agent_set and _lexicon(language).has_intent(said):
            return False
        return len(said[0]) >= 5 and _matches(said[0], agent_set, LONE_WORD_CUTOFF)
    tail = 0
    for word in reversed(said):
        if _matches(word, agent_set):
            break
        tail += 1
    if tail >= ECHO_TAIL_WORDS:
        return False
    lexicon = _lexicon(language)
    runs = _runs_not_said_by_agent(said, agent_set)
    if any(len(run) >= INTENT_RUN_WORDS and lexicon.has_intent(run) for run in runs):
        return False
    return echo_overlap(said, agent) >= ECHO_OVERLAP


#: Words in a row, none of them the agent's, that with an intent among them are the user's over the echo.
INTENT_RUN_WORDS = 2


def _runs_not_said_by_agent(said: list[str], agent_set: set[str]) -> list[list[str]]:
    """The runs of consecutive words in ``said`` that the agent did not say. Exactly, not by the near-miss
    match the echo's overlap allows: that takes "what" for "that" and "you" for "your"."""
    runs: list[list[str]] = [[]]
    for word in said:
        if word in agent_set:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append(word)
    return [run for run in runs if run]


#: Words in a row that, found in the same order among the agent's recent words, are in the echo-removed audio's
#: transcript what the fit left of the echo: one word alone may be the user's ("you", "the").
ECHO_PHRASE_WORDS = 2


def without_echo_phrases(text: str, agent_text: str) -> tuple[str, bool]:
    """``text`` less its runs of ECHO_PHRASE_WORDS or more words that repeat the agent's in order, and whether
    there were any. Fitted through a phone's loudspeaker and a room, the echo path leaves some of the echo, and
    its transcript still holds the agent's words: "Open with the shoe." for "uh-huh" said over "Open with a
    short story", "Open with a- Can I stop you?" for "Can I stop you?"."""
    tokens = [(token, _token_key(token)) for token in text.split()]
    tokens = [(token, key) for token, key in tokens if key]
    agent = [_token_key(token) for token in agent_text.split()[-ECHO_WINDOW_WORDS:]]
    keys = [key for _, key in tokens]
    echo: set[int] = set()
    for block in difflib.SequenceMatcher(None, keys, agent, autojunk=False).get_matching_blocks():
        if block.size >= ECHO_PHRASE_WORDS:
            echo.update(range(block.a, block.a + block.size))
    kept = " ".join(token for i, (token, _) in enumerate(tokens) if i not in echo)
    if echo and kept and text[:1].isupper():
        kept = kept[0].upper() + kept[1:]
    return kept, bool(echo)


def _token_key(token: str) -> str:
    key = "".join(words(token))
    return _HOMOPHONES.get(key, key)


def decide_over_echo(
    text: str,
    agent_text: str,
    techniques: Techniques = Techniques(),
    language: str = "en",
    *,
    interim: bool = False,
) -> Decision:
    """What the transcript of speech over the agent, heard again with its echo removed, is: the agent's
    phrases left in it are not the user's (``without_echo_phrases``); with them gone, no words, or short ones
    that are neither an acknowledgement nor an intent ("the shoe"), are what was left of the echo. ``interim``:
    heard while the utterance goes on (``InterruptionDecider.classify``)."""
    kept, had_echo = without_echo_phrases(text, agent_text)
    if not words(kept):
        return Decision(Kind.ECHO, final=True, text=text)
    kind = InterruptionDecider(techniques, language).classify(kept, agent_text, interim=interim)
    assert kind is not None  # kept has words
    decision = Decision(kind, final=True, text=kept)
    if had_echo and decision.kind is Kind.BACKCHANNEL and not only_acknowledgements(kept, language):
        return Decision(Kind.ECHO, final=True, text=text)
    return decision


def only_acknowledgements(text: str, language: str = "en") -> bool:
    """Whether ``text`` is made only of the language's backchannel phrases ("yeah", "right, right"): words
    that, even as the first interim of a longer utterance, hardly begin a sentence that takes the turn."""
    return _lexicon(language).only_backchannels(words(text))


def only_prefaces(text: str, language: str = "en") -> bool:
    """Whether ``text`` is made only of words that often open a turn ("Oh.", "Um, well"): see en.PREFACES."""
    said = words(text)
    return bool(said) and set(said) <= _lexicon(language).prefaces


@functools.cache
def _lexicon(language: str) -> Lexicon:
    return Lexicon(language)


class InterruptionDecider:
    """Decides one utterance spoken over the agent. Feed it transcripts; read ``decision``."""

    def __init__(self, techniques: Techniques = Techniques(), language: str = "en") -> None:
        self._techniques = techniques
        self._language = language
        self._lexicon = _lexicon(language)
        self.decision = PENDING
        self._streak = 0  # interims in a row whose words were neither acknowledgements nor echo

    def classify(self, text: str, agent_text: str, *, interim: bool = False) -> Kind | None:
        """What ``text`` is, by its words alone; None if it has none. An ``interim`` (the utterance goes on)
        of acknowledgements alone is no question whatever its mark: Whisper ends an acknowledgement cut off by
        the interim's end with one ("Okay?" of "okay, sure", "Yes?" of "yes, yes"); the final decides whether
        "Okay?" was asked."""
        said = words(text)
        if not said:
            return None
        if self._techniques.echo and is_echo(text, agent_text, self._language):
            return Kind.ECHO
        all_acknowledgements = self._lexicon.only_backchannels(said)
        question = text.rstrip().endswith("?") and not (interim and all_acknowledgements)
        backchannels = self._techniques.backchannels and not question
        acknowledged = all_acknowledgements or len(said) <= SHORT_WORDS
        if backchannels and acknowledged and not self._lexicon.has_intent(said):
            return Kind.BACKCHANNEL
        return Kind.INTERRUPTION

    def heard(
        self,
        text: str,
        agent_text: str,
        speech_ms: float = WORDS_MIN_MS,
        *,
        settle: bool = True,
        signal_decides: bool = False,
    ) -> Decision:
        """An interim or pause transcript of the first ``speech_ms`` of the utterance. An interruption is
        final (at once if the words start with an intent, else once ``speech_ms`` reaches WORDS_MIN_MS, and
        ``settle``: no check of the signal is still to say whether the words are the echo's); a backchannel or
        echo is provisional (the user may go on: "yeah, but ..."). With ``signal_decides`` (the agent's echo may
        be in the microphone, and the echo-removed audio will be heard: the words may be the echo's, or mixed
        with it), words that settled are provisional too, the signal's check to confirm them; a leading intent
        still interrupts at once ("Wait, stop." over a headset's silence: waiting played the client's lead)."""
        if self.decision.final:
            return self.decision
        kind = self.classify(text, agent_text, interim=True)
        self._streak = self._streak + 1 if kind is Kind.INTERRUPTION else 0
        if kind is Kind.INTERRUPTION:
            settled = settle and speech_ms >= WORDS_MIN_MS and self._streak >= 2
            leading = self._lexicon.leading_intent(words(text))
            if settled or leading or not self._techniques.echo:
                self.decision = Decision(kind, final=leading or not signal_decides, text=text)
            # else: maybe Whisper's first guess at the agent's echo; keep what was decided so far
        elif kind is not None:
            self.decision = Decision(kind, final=False, text=text)
        return self.decision

    def ended(self, text: str, agent_text: str) -> Decision:
        """The utterance's final transcript: it decides, no words being noise."""
        if self.decision.final:
            return self.decision
        kind = self.classify(text, agent_text)
        self.decision = Decision(kind or Kind.NOISE, final=True, text=text)
        return self.decision
