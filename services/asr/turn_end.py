"""Does a transcript read as a finished turn? The adaptive end of turn's one question.

A deliberately small heuristic on Whisper's punctuated text, not a model:

- its last word is a function word, or it trails off (``...``, ``,``, ``-``),
  or it is one word that opens a sentence rather than ending one ("Well.",
  "Honestly."; Whisper writes the comma after it as a full stop when the
  pause cuts the rest off): incomplete;
- anything else is complete, with or without a final ``.``, ``!`` or ``?``.
  Whisper tiny.en leaves the full stop off many short answers ("10 of clubs",
  "$950 a month"): waiting the incomplete silence after each of them made
  short answers the slowest turns, and a fragment cut off by a pause ends in a
  function word anyway ("I want to tell you about"). A number is a word.

The function-word check is there because Whisper puts a full stop on nearly
everything it hears, a fragment cut off by a pause included ("My manager said
that." is what it writes for "My manager said that [pause] I should..."), and a
question mark on a question's first half ("Can you help me with?"). A function
word (article, preposition, conjunction, possessive, subject pronoun, a form
of "be", a modal, a filler) rarely ends a finished sentence but often comes
right before a pause in the middle of one. A wrong "incomplete" costs only a
longer wait (incomplete_silence_ms); a wrong "complete" cuts the user off, so
the list errs on the side of waiting: "Who did you talk to?" waits too.
"""

from __future__ import annotations

import re

FUNCTION_WORDS = frozenset(
    {
        # articles and determiners that need a noun
        *("a", "an", "the", "that", "every", "each"),
        # conjunctions ("though" ends many sentences as an adverb: "I'm in New Jersey now though.")
        *("and", "but", "or", "nor", "so", "because", "since", "although", "while", "if", "unless"),
        *("than", "when", "whether"),
        # prepositions; not those that often end a sentence as adverbs (over, after, before, around, through)
        *("to", "of", "about", "with", "for", "in", "on", "at", "from", "into", "onto", "by", "as", "like"),
        *("between", "without", "within", "during", "against", "toward", "towards"),
        # possessives and subject pronouns ("her" is an object as often: "I told her.")
        *("my", "your", "our", "their", "his", "its", "i", "we", "they", "he", "she"),
        # be and the modals ("I was [pause] thinking"); not do or have, which end many answers ("I did.")
        *("is", "are", "was", "were", "am", "will", "would", "can", "could", "should", "shall", "may", "might"),
        "must",
        # fillers
        *("um", "uh", "uhm", "er", "erm", "hmm"),
    }
)

# Words that open a sentence, said alone before a pause ("Well, [pause] I guess ..."). Not "okay", "no" or
# "wait": said alone, each is a whole answer as often.
OPENERS = frozenset({"well", "honestly", "actually", "basically", "anyway", "now", "hmm"})
_CLOSING = "\"')]} \u00bb\u201d\u2019"  # quotes and brackets after the final punctuation
_TRAILING_OFF = ("...", "…", ",", ";", ":", "-", "\u2013", "\u2014")
_LAST_WORD = re.compile(r"([a-z0-9']+)[^a-z0-9']*$")
_WORDS = re.compile(r"[^a-z0-9' ]+")


def reads_complete(text: str) -> bool:
    """True if ``text`` reads as a finished sentence or question (see the module's rules)."""
    text = text.rstrip(_CLOSING)
    if text.endswith(_TRAILING_OFF):
        return False
    if _WORDS.sub(" ", text.lower()).strip() in OPENERS:
        return False
    last = _LAST_WORD.search(text.lower())
    return last is not None and last.group(1).strip("'") not in FUNCTION_WORDS
