"""The Python SDK for the gateway's Converse stream (docs/clients.md), and the clients of the project's other
gRPC services (used by the CLI, tests and benchmarks).

    from voice_agent.client import connect, events

    async with await connect("127.0.0.1:50051", token=key) as session:
        await session.send_text("Hello")
        async for event in session:
            if isinstance(event, events.TurnMetrics):
                break
"""

from voice_agent.client import events
from voice_agent.client.events import ReconnectPolicy
from voice_agent.client.playout import Playout, RealTimePlayout
from voice_agent.client.session import VoiceSession, connect
from voice_agent.client.talk import SpokenTurn, TurnFailed, spoken_turn

__all__ = [
    "Playout",
    "RealTimePlayout",
    "ReconnectPolicy",
    "SpokenTurn",
    "TurnFailed",
    "VoiceSession",
    "connect",
    "events",
    "spoken_turn",
]
