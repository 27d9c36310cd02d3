"""The model services, one process each: ``services.asr`` (VAD+ASR), ``services.tts``
(speech synthesis) and ``services.llm`` (the embedded LLM server)."""
