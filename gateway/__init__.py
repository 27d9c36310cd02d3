"""The conversation gateway: one bidirectional ``Converse`` stream per
conversation, running each turn across ASR, the LLM and TTS, with barge-in.

Layout:
  config.py    process settings (flags and VOICE_GATEWAY_* variables)
  persona.py   the default coaching system prompt
  llm.py       the client of any OpenAI-compatible /v1/chat/completions server
  history.py   what was said, within a token budget
  turn.py      one agent turn: LLM tokens into TTS, audio out, cancellable
  session.py   one conversation: the ASR stream, turns, barge-in, errors
  serving.py   the gRPC servicer and the process entry point
"""
