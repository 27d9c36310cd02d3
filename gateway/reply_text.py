"""What of the LLM's reply may be spoken: never a speaker label or a turn marker.

A base model continues a dialogue prompt, and with a persona it has not been taught
it often writes the prompt's labels instead of a reply ("Coach: Coach: Coach:"), or
goes on to write the client's next line ("... Client: and then"). Whatever the
persona and the model, the gateway cuts both before the text reaches the TTS, the
client and the history:

- labels at the start of the reply (one to three capitalised words and a colon, in a
  run: "Coach:", "Head Coach: Sam:") are dropped;
- a speaker label or a chat turn marker later in the reply ends it: what follows is
  another speaker's line.

The filter is streaming: it holds back only what could still turn out to be a label
(a first word not yet followed by anything, or a word at the end that a label starts
with), so it costs about one token of latency at the start of a reply.
"""

from __future__ import annotations

import re

#: Speaker labels that end a reply when they appear in it, besides the persona's own (labels_in).
SPEAKER_LABELS = ("client", "coach", "user", "assistant", "human", "ai", "system", "model", "bot", "agent")
# A chat template's turn markers (Gemma's, Llama's, ChatML's): never speech, always the end of the reply.
_TURN_MARKER = re.compile(r"<\|?[a-z_]*(?:turn|start|end|eot|im_)[a-z_|]*>?", re.IGNORECASE)
_LEADING_LABEL = re.compile(r"\s*[A-Z][\w'.-]*(?: [A-Z][\w'.-]*){0,2}\s*:(?!\S)\s*")
# What a label at the start of the reply may still become: capitalised words, no colon yet.
_LABEL_SO_FAR = re.compile(r"\s*(?:[A-Z][\w'.-]*(?: [A-Z][\w'.-]*){0,2} ?)?")
_PERSONA_LABEL = re.compile(r"^\s*([A-Z][\w'-]*(?: [A-Z][\w'-]*)?):", re.MULTILINE)


def labels_in(prompt: str) -> tuple[str, ...]:
    """The speaker labels a persona's own example exchanges use ("Max:" in "Max: Try a plank.")."""
    return tuple(dict.fromkeys(label.lower() for label in _PERSONA_LABEL.findall(prompt)))


def speakable(text: str) -> bool:
    """Whether ``text`` has anything a voice can say."""
    return any(char.isalnum() for char in text)


class SpokenReply:
    """Streams an LLM reply's deltas through; ``feed`` returns what may be spoken now."""

    def __init__(self, labels: tuple[str, ...] = ()) -> None:
        names = sorted({*SPEAKER_LABELS, *labels}, key=len, reverse=True)
        self._labels = tuple(names)
        self._label_later = re.compile(
            r"(?:^|(?<=[\s.,!?;\"']))(?:" + "|".join(re.escape(n) for n in names) + r")\s*:", re.IGNORECASE
        )
        self._pending = ""
        self._started = False  # the reply's first words have been passed on (no leading label can follow)
        self.ended = False  # a label or a turn marker ended the reply: the rest of the stream is not speech
        self.text = ""  # everything passed on

    def feed(self, delta: str) -> str:
        if self.ended:
            return ""
        self._pending += delta
        if not self._started and not self._strip_leading_labels():
            return ""
        return self._release(final=False)

    def finish(self) -> str:
        """What was held back, once the stream has ended."""
        if self.ended:
            return ""
        if not self._started:
            self._drop_leading_labels()
            self._pending = self._pending.lstrip()
            self._started = True
        return self._release(final=True)

    def say(self, text: str) -> str:
        """Words of the gateway's own (a fallback), passed on as they are."""
        self.text += text
        return text

    def _strip_leading_labels(self) -> bool:
        """Drops complete labels at the start; True once the start can no longer be a label."""
        self._drop_leading_labels()
        if _LABEL_SO_FAR.fullmatch(self._pending):
            return False  # empty, or capitalised words that a colon may still follow
        self._pending = self._pending.lstrip()
        self._started = True
        return True

    def _drop_leading_labels(self) -> None:
        while match := _LEADING_LABEL.match(self._pending):
            self._pending = self._pending[match.end() :]

    def _release(self, *, final: bool) -> str:
        cut = self._end_of_reply(self._pending)
        if cut is not None:
            out, self._pending, self.ended = self._pending[:cut].rstrip(), "", True
        elif final:
            out, self._pending = self._pending, ""
        else:
            keep = self._possible_label_tail(self._pending)
            out, self._pending = self._pending[: len(self._pending) - keep], self._pending[len(self._pending) - keep :]
        if not speakable(self.text + out):  # nothing a voice can say yet ("...", "*"): held, or dropped at the end
            self._pending = "" if final or self.ended else out + self._pending
            return ""
        self.text += out
        return out

    def _end_of_reply(self, text: str) -> int | None:
        starts = [m.start() for m in (self._label_later.search(text), _TURN_MARKER.search(text)) if m]
        return min(starts) if starts else None

    def _possible_label_tail(self, text: str) -> int:
        """How many characters at the end could be the start of a label or a turn marker."""
        marker = text.rfind("<")
        if marker >= 0 and ">" not in text[marker:] and len(text) - marker <= 16:
            return len(text) - marker
        word = re.search(r"\s*[A-Za-z]+\s*$", text)  # with the space before it: a cut leaves none behind
        if word and any(label.startswith(word.group().strip().lower()) for label in self._labels):
            return len(text) - word.start()
        return 0
