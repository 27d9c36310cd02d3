"""``python -m services.llm``: prepares the embedded model, then becomes the llama.cpp server.

The process replaces itself with the server (same pid), so ``voice-agent
down`` and Kubernetes stop it with one SIGTERM.
"""

from __future__ import annotations

import logging
import os
import sys

from services.llm.config import LlmServerConfig
from services.llm.models import embedded_llm_model
from voice_agent.logs import setup_logging

log = logging.getLogger("services.llm")


def server_command(config: LlmServerConfig, model: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model", model,
        "--model_alias", config.model_alias,
        "--host", config.host,
        "--port", str(config.port),
        "--n_ctx", str(config.context_tokens),
        "--n_threads", str(config.threads or os.cpu_count() or 1),
        # Without this, a new request kills the streams already in flight.
        "--interrupt_requests", "False",
    ]  # fmt: skip


def main() -> None:
    config = LlmServerConfig.from_args(prog="python -m services.llm")
    setup_logging()
    model = config.model or str(embedded_llm_model())
    log.info("serving %s as %r on %s:%d", model, config.model_alias, config.host, config.port)
    command = server_command(config, model)
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
