"""What the engines are given to speak, and where phrases are cut.

The segmenter sees text as an LLM streams it, fragment by fragment, and cuts
it into phrases: a short first phrase, so that speech starts early, then
whole sentences. Phrases are contiguous slices of the input, so their spans
cover it in order with no gaps.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

# Dropped before synthesis: control and format characters, private use,
# unassigned code points, and symbols (emoji are "So", skin tones "Sk").
_DROPPED_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "So", "Sk"}
_VARIATION_SELECTORS = range(0xFE00, 0xFE10)

_CLAUSE_MARKS = ",;:\u2014\u2013"  # and the em and en dashes
_SENTENCE_MARKS = ".!?…"
_CLOSERS = "\"')]}\u201d\u2019\u00bb"  # and the closing curly quotes and guillemet
# A period after these is not a sentence end.
_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e", "no", "mt", "approx"}
# Longer than any abbreviation: a word this long, or longer, is none of them.
_ABBREVIATION_TAIL = max(map(len, _ABBREVIATIONS)) + 1


def speakable(text: str) -> str:
    """The text without emoji and control characters, whitespace collapsed."""
    kept = []
    for char in text:
        if char in "\n\r\t":
            kept.append(" ")
        elif unicodedata.category(char) not in _DROPPED_CATEGORIES and ord(char) not in _VARIATION_SELECTORS:
            kept.append(char)
    return " ".join("".join(kept).split())


def _is_word_char(char: str) -> bool:
    # No letter or digit is in a dropped category, so this is has_words for one character.
    return char.isalnum() and unicodedata.category(char) not in _DROPPED_CATEGORIES


def has_words(text: str) -> bool:
    return any(char.isalnum() for char in speakable(text))


@dataclass(frozen=True)
class Phrase:
    index: int
    text: str
    start: int  # code point offsets into the stream's whole text, [start, end)
    end: int


class PhraseSegmenter:
    def __init__(self, first_phrase_words: int, max_phrase_chars: int) -> None:
        self._first_phrase_words = first_phrase_words
        self._max_phrase_chars = max_phrase_chars
        self._text = ""
        self._cut = 0  # where the next phrase starts
        self._count = 0

    @property
    def text(self) -> str:
        return self._text

    def push(self, fragment: str) -> list[Phrase]:
        """Adds a fragment; returns the phrases it completes."""
        self._text += fragment
        phrases = []
        while (end := self._boundary(self._text[self._cut :])) is not None:
            phrases.append(self._take(self._cut + end))
        return phrases

    def flush(self) -> list[Phrase]:
        """Everything not yet cut, as one last phrase (if it has words)."""
        if not has_words(self._text[self._cut :]):
            return []
        return [self._take(len(self._text))]

    def _take(self, end: int) -> Phrase:
        phrase = Phrase(self._count, self._text[self._cut : end], self._cut, end)
        self._cut, self._count = end, self._count + 1
        return phrase

    def _boundary(self, pending: str) -> int | None:
        """Where the next phrase ends in ``pending``, or None if it is not complete yet."""
        first = self._count == 0
        ends = []
        # Never a phrase of punctuation or emoji alone: the first end after a letter or digit
        # (has_words of a prefix). Found lazily, in one pass: a text of thousands of short
        # sentences must cost time linear in its length, not cubic (minutes of a blocked loop).
        words_at = next((index for index, char in enumerate(pending) if _is_word_char(char)), None)
        if words_at is not None:
            end = next((end for end in _candidate_ends(pending, clauses=first) if end > words_at), None)
            ends += [end] if end is not None else []
        if first:
            ends += [end for end in [_after_words(pending, self._first_phrase_words)] if end is not None]
        if ends:
            return min(ends)
        if len(pending) > self._max_phrase_chars:
            return _forced_cut(pending, self._max_phrase_chars)
        return None


def _candidate_ends(pending: str, *, clauses: bool) -> Iterator[int]:
    """Phrase ends at sentence (and, for a first phrase, clause) boundaries, in order."""
    for index, char in enumerate(pending):
        if char == "\n":
            yield index + 1
        elif char in _SENTENCE_MARKS or (clauses and char in _CLAUSE_MARKS):
            end = index + 1
            while end < len(pending) and pending[end] in _CLOSERS:
                end += 1
            at_end = end == len(pending)
            if at_end and char in ".…":
                continue  # "3." may become "3.5", "Dr." may go on: wait for the next fragment
            if (at_end or pending[end].isspace()) and not (char == "." and _is_abbreviation(pending[:index])):
                yield end


def _is_abbreviation(before: str) -> bool:
    # Only the tail can hold the last word if it is an abbreviation: splitting the whole
    # text at every period would make a text of many periods quadratic.
    word = re.split(r"\s", before[-_ABBREVIATION_TAIL:])[-1].lower()
    return word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha())


def _after_words(pending: str, words: int) -> int | None:
    """The end of the ``words``-th complete word (one followed by whitespace)."""
    for count, match in enumerate(re.finditer(r"\S+(?=\s)", pending), start=1):
        if count == words:
            return match.end()
    return None


def _forced_cut(pending: str, limit: int) -> int:
    """A cut in an over-long sentence: the last clause mark, else the last space, before the limit."""
    window = pending[:limit]
    for marks in (_CLAUSE_MARKS, " "):
        cut = max(window.rfind(mark) for mark in marks)
        if cut > 0 and has_words(window[: cut + 1]):
            return cut + 1
    return limit
