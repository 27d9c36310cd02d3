"""English turn-taking words: what, spoken over the agent, does not interrupt it, and what always does.

Phrases are compared after normalisation (lower case, punctuation dropped, hyphens kept as spaces), so
"Mm-hmm." is "mm hmm". A transcript is a backchannel when it is made only of backchannel phrases
("yeah, yeah", "okay, I see") and holds no intent word.
"""

from __future__ import annotations

#: Short acknowledgements: the listener is following, not taking the turn.
BACKCHANNELS: tuple[str, ...] = (
    "mm hmm",
    "mhm",
    "mm",
    "hmm",
    "uh huh",
    "um hum",
    "yeah",
    "yep",
    "yes",
    "right",
    "okay",
    "ok",
    "i see",
    "sure",
    "got it",
    "alright",
    "all right",
    "exactly",
    "true",
    "cool",
    "nice",
    "great",
    "wow",
    "oh",
    "ah",
    "aha",
    "indeed",
    "of course",
    "makes sense",
    "that makes sense",
    "i know",
    "totally",
    "definitely",
    "absolutely",
    "interesting",
    "good",
    "fine",
    "uh",
    "um",
    "er",
)

#: Words that always mean the user wants the turn, however short the utterance (an utterance of at most two
#: words with none of these is taken as an acknowledgement: gateway/turn_taking.SHORT_WORDS).
INTENTS: tuple[str, ...] = (
    "wait",
    "stop",
    "no",
    "hold on",
    "hang on",
    "sorry",
    "but",
    "excuse me",
    "actually",
    "pause",
    "quiet",
    "enough",
    "what",
    "why",
    "how",
    "who",
    "where",
    "when",
    "can",
    "could",
    "question",
    "hey",
    "listen",
    "hello",
    "nope",
    "not",
    "don't",
    "let me",
    "disagree",
    "wrong",
    "please",
)

#: Words that, said alone over the agent, often open a turn of the user's rather than acknowledge ("Oh, ...",
#: "Um, ...", then a pause): a backchannel of these alone lets the held audio go on only after a grace
#: (gateway/overlap.py), in which more speech keeps it held.
PREFACES: tuple[str, ...] = ("oh", "ah", "um", "uh", "er", "hmm", "well", "so")
