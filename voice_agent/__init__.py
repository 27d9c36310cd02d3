"""voice-agent: a real-time voice conversation platform for coaching avatars.

This package holds what every process shares (configuration, logging, the
gRPC server scaffolding, metrics, audio formats, what a service declares to be
run), the generated contracts under ``voice_agent.v1`` and the client library.
It imports none of the others (tests/test_layout.py). The services themselves
live in the ``services`` package, the conversation orchestrator in ``gateway``,
the operator's CLI, embedded stack, demo and test speech in ``voice_ops``.
"""

import os

__version__ = "0.1.0"

# onnxruntime (Silero VAD, Kokoro, Piper) sends usage telemetry to Microsoft and writes a device id
# under ~/.cache unless this is set before it initialises; every process imports this package first.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
