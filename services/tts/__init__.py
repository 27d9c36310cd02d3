"""The TTS service: streaming speech synthesis behind ``voice_agent.v1.Tts``.

Layout:
  config.py      process settings (flags and VOICE_TTS_* variables)
  protocol.py    per-request settings read from SynthesisConfig, validated
  text.py        what can be spoken, and the phrase segmenter
  models.py      where the embedded models come from (PyPI packages)
  engines/       one small module per engine: piper (default), kokoro
  stream.py      one synthesis stream: phrases in, audio chunks out
  serving.py     the gRPC servicer and the process entry point
"""
