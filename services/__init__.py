"""The model services: ``services.asr`` (VAD+ASR) and, later, ``services.tts``."""
