"""The OpenAI Realtime-compatible WebSocket front of the gateway (GET /v1/realtime on the HTTP port).

protocol.py  the wire format, pure: client frames into core inputs and session choices, core events
             into server events (one response per agent turn, its timings in response.metadata)
serving.py   the aiohttp app on http_port (the socket, the browser page from gateway/web/, /healthz)
             and one socket's loop: auth, admission, session, conversation
"""
