"""``python -m services.llm``: prepares the embedded model, then serves llama.cpp's OpenAI-compatible
server with the project's /metrics and tracing. uvicorn drains in-flight requests on SIGTERM."""

from __future__ import annotations

import logging

import uvicorn

from services.llm.config import LlmServerConfig
from services.llm.models import embedded_llm_model
from services.llm.server import create_app
from voice_agent import telemetry
from voice_agent.logs import setup_logging

log = logging.getLogger("services.llm")


def main() -> None:
    config = LlmServerConfig.from_args(prog="python -m services.llm")
    setup_logging()
    telemetry.setup_tracing("voice-llm")
    model = config.model or str(embedded_llm_model())
    log.info("serving %s as %r on %s:%d (metrics on /metrics)", model, config.model_alias, config.host, config.port)
    try:
        uvicorn.run(create_app(config, model), host=config.host, port=config.port, log_level="warning")
    finally:
        telemetry.shutdown_tracing()


if __name__ == "__main__":
    main()
