"""The conversation gateway: one conversation per client stream, each turn across ASR, the LLM and TTS,
with barge-in. docs/architecture.md describes it whole.

Layout, from the wire inwards:
  serving.py       the gRPC Converse adapter (ConverseRequest in, ConverseResponse out) and `python -m gateway`
  realtime/        the OpenAI Realtime-compatible WebSocket front on the HTTP port (protocol.py: the wire format,
                   pure; serving.py: the aiohttp app, one socket's loop); web/ the browser page it serves at /
  session_settings.py  a session's settings: its SessionConfig over GatewayConfig, validated once
  events.py        the core's typed inputs and events, which any front converts to its own wire format
  conversation.py  one conversation: user turns in, agent turns out, barge-in, history
  limits.py        what ends a conversation its client does not end: length, idleness, the drain
  turn_taking/     speech over the agent: interruption, backchannel, noise or echo (pure; word lists per language)
  listening.py     the user's side: the ASR stream, the audio clock, the user's turn (typed hooks)
  preemption.py    a reply started on a pause's transcript, kept or discarded
  turn.py          one agent turn: LLM tokens into TTS, paced audio out, cancellable
  reply_text.py    what of the LLM's reply may be spoken: labels and turn markers cut
  observer.py      metrics and turn spans, reported to and never by the conversation logic
  backends.py      pooled backend channels, and the warm or cold paths a turn takes to them
  llm.py           the client of any OpenAI-compatible /v1/chat/completions server
  history.py       what was said, within a token budget
  latency.py       the latency techniques (fast / baseline mode, per-session choices)
  auth.py          bearer tokens: static API keys or JWTs from a JWKS
  config.py        process settings (flags and VOICE_GATEWAY_* variables); persona.py the default persona
"""
