"""The agent's echo as a signal: its own voice coming back through the user's loudspeaker into the microphone.

- ``path.py``: the echo found (GCC-PHAT), its path fitted on a whole utterance and subtracted, pure numpy;
  ``EchoTimeline`` keeps a session's recent microphone audio and agent audio for it.
- ``canceller.py``: WebRTC AEC3 (through livekit) on the microphone audio as it comes, gated by an echo
  detector; off by default (docs/performance.md says why).

What the echo's *words* mean (is this speech the agent's echo?) is gateway/turn_taking's, which stays pure.
"""
