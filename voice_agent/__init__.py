"""voice-agent: a real-time voice conversation platform for coaching avatars.

This package holds what every process shares (configuration, logging, the
gRPC server scaffolding, metrics, audio formats), the generated contracts
under ``voice_agent.v1``, the client library and the operator CLI.
The services themselves live in the ``services`` package, the conversation
orchestrator in ``gateway``.
"""

__version__ = "0.1.0"
