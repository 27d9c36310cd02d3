"""voice-agent: a real-time voice conversation platform for coaching avatars.

This package holds what every process shares (configuration, logging, the
gRPC server scaffolding, metrics, audio formats), the generated contracts
under ``voice_agent.v1``, the client library and the operator CLI.
The services themselves live in the ``services`` package, the conversation
orchestrator in ``gateway``.
"""

import os

__version__ = "0.1.0"

# onnxruntime (Silero VAD, Kokoro, Piper) sends usage telemetry to Microsoft and writes a device id
# under ~/.cache unless this is set before it initialises; every process imports this package first.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
