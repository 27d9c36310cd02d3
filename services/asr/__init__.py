"""The VAD+ASR service: silero-vad endpointing and faster-whisper transcription
behind the bidirectional ``voice_agent.v1.Asr/Recognize`` stream.

Layout:
  config.py       process settings (flags and VOICE_ASR_* variables)
  protocol.py     per-stream settings read from RecognitionConfig, validated
  vad.py          Silero VAD on ONNX Runtime, and the endpointing state machine
  transcriber.py  Whisper on CTranslate2, with an encoder window fitted to the utterance
  stream.py       one Recognize stream: audio in, events out
  serving.py      the gRPC servicer and the process entry point
"""
