"""The VAD+ASR service: silero-vad endpointing and faster-whisper transcription
behind the bidirectional ``voice_agent.v1.Asr/Recognize`` stream. Its modules: docs/architecture.md (module map).
"""
