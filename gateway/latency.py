"""The latency techniques of a session, each switchable (docs/performance/latency-techniques.md).

``--latency-mode fast`` (the default) turns every technique on, ``baseline``
every one off; a session's ``LatencyOptions`` override single techniques, so
that one running stack can be measured with each technique off, alone, and
all on, side by side.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace

from voice_agent.contract import DEFAULT_MIN_SILENCE_MS

LATENCY_MODES = ("baseline", "fast")
# The end-of-turn silence of each mode: the design's (the ASR's default), and its 150 ms target (made safe by
# the adaptive end of turn, which waits longer after a transcript that ends mid-sentence).
MODE_SILENCE_MS = {"baseline": DEFAULT_MIN_SILENCE_MS, "fast": 150}
# Whole first sentence (well, up to this many words) when the short first phrase is off.
LONG_FIRST_PHRASE_WORDS = 50


@dataclass(frozen=True)
class LatencyPlan:
    preemptive_generation: bool
    reuse_pause_transcript: bool
    short_first_phrase: bool
    warm_paths: bool
    adaptive_endpointing: bool
    min_silence_ms: int

    @classmethod
    def for_mode(cls, mode: str, min_silence_ms: int = 0) -> LatencyPlan:
        on = mode == "fast"
        return cls(on, on, on, on, on, min_silence_ms or MODE_SILENCE_MS[mode])

    def with_options(self, **chosen: bool | int) -> LatencyPlan:
        """A session's choices (any field) over the gateway's mode."""
        return replace(self, **chosen)  # type: ignore[arg-type]

    @property
    def pause_transcripts(self) -> bool:
        return self.preemptive_generation or self.reuse_pause_transcript or self.adaptive_endpointing

    def recognition_options(self, incomplete_silence_ms: int) -> dict[str, object]:
        """The RecognitionConfig fields that carry this plan to the ASR."""
        options: dict[str, object] = {"min_silence_ms": self.min_silence_ms}
        if self.pause_transcripts:
            options |= {
                "speculative_transcripts": True,
                "reuse_pause_transcript": self.reuse_pause_transcript,
                "adaptive_endpointing": self.adaptive_endpointing,
            }
            if self.adaptive_endpointing:
                options["incomplete_silence_ms"] = max(incomplete_silence_ms, self.min_silence_ms)
        return options

    def first_phrase_words(self, short: int) -> int:
        return short if self.short_first_phrase else LONG_FIRST_PHRASE_WORDS

    def describe(self) -> str:
        on = [f.name for f in fields(self) if getattr(self, f.name) is True]
        return f"{', '.join(on) or 'no techniques'}; end of turn after {self.min_silence_ms} ms of silence"


_NOT_WORD = re.compile(r"[^\w\s']+")


def same_words(a: str, b: str) -> bool:
    """Whether two transcripts say the same words: case, punctuation and spacing aside."""
    return _words(a) == _words(b)


def _words(text: str) -> list[str]:
    return _NOT_WORD.sub(" ", text.lower()).split()
