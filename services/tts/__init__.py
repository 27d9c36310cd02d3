"""The TTS service: streaming speech synthesis behind ``voice_agent.v1.Tts``.
Its modules: docs/architecture.md (module map).
"""
