"""What speech over the agent that read as its echo turned out to be, once heard again with the echo removed
(the Listener's ``words_over_echo``): the outcome, and the user's words, if any.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

#: The residual's power over the microphone's, over the last second of an utterance over the agent (see
#: gateway/echo/path.py), above which more than the echo was heard (the user over it) and is transcribed again.
#: Measured offline on benchmarks/aec.py's material (5 replies, 18 linear echo conditions,
#: docs/performance/turn-taking.md "Speech over the echo"): utterances of the echo alone left -4.2 dB or less but
#: one wordless fragment (-1.0 dB), most under -10 dB; an interruption over the echo, -3.6 dB or more in all 36.
#: On the natural material (issue 24: a loudspeaker, a room, a phone's jitter, -35 to -12 dB) the echo alone
#: left -8.7 to -16 dB (-3.2 dB through a jitter buffer that jumps, before the path was followed block by block
#: and also fitted on the part of the window it explains best), and a backchannel said over it -0.1 to -1.3 dB:
#: so -3 dB.
OVER_ECHO_LEVEL_DB = -3.0


class OverEcho(StrEnum):
    """What became of speech over the agent that read as its echo, heard again with the echo removed: what
    ``Listener.words_over_echo`` found, and for the user's words what the conversation decided they were.
    The label values of voice_gateway_speech_over_echo_total (all but WORDS, which is counted as its decision)."""

    NO_ECHO = "no_echo"  # the agent's audio is not in the microphone
    ECHO_ONLY = "echo_only"  # nothing more than it
    WORDS = "words"  # the user's words, which the conversation then judges:
    INTERRUPTION = "interruption"  # they interrupt the agent
    NOT_AN_INTERRUPTION = "not_an_interruption"  # they do not (a backchannel, say)
    NO_WORDS = "no_words"  # more than the echo, but no words in it
    FAILED = "failed"  # transcribing it failed


@dataclass(frozen=True)
class HeardOverEcho:
    """What ``Listener.words_over_echo`` found, and with ``OverEcho.WORDS`` the user's ``words``."""

    outcome: OverEcho
    words: str = ""
    until: int = 0  # the microphone sample where the audio heard ended (the next check may start there)
