"""``python -m services.llm``: prepares the embedded model, then serves llama.cpp's OpenAI-compatible
server with the project's /metrics and tracing. uvicorn drains in-flight requests on SIGTERM."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

import uvicorn

from services.llm.config import LlmServerConfig
from services.llm.models import embedded_llm_model
from services.llm.server import create_app
from voice_agent import telemetry
from voice_agent.logs import setup_logging

log = logging.getLogger("services.llm")


def lower_priority(nice: int) -> None:
    """Yields the CPU to the rest of the machine: this process's threads (llama.cpp's, started later,
    inherit it) and, where Linux groups each session's processes (autogroup scheduling, on by default
    on desktops and here), this process's group too. nice alone orders threads only within a group: the
    embedded stack starts each service in a session of its own, where it changed nothing (measured,
    make bench-scheduling)."""
    os.nice(nice)
    with contextlib.suppress(OSError):  # no autogroup: a kernel without it, or a container's cgroup
        Path("/proc/self/autogroup").write_text(str(nice))


def main() -> None:
    config = LlmServerConfig.from_args(prog="python -m services.llm")
    if config.nice:
        lower_priority(config.nice)  # first: every thread started after it (the tracer's too) inherits it
    setup_logging()
    telemetry.setup_tracing("voice-llm")
    model = config.model or str(embedded_llm_model())
    log.info("serving %s as %r on %s:%d (metrics on /metrics)", model, config.model_alias, config.host, config.port)
    log.info("settings: %s", ", ".join(f"{key} {value}" for key, value in config.describe().items()))
    try:
        uvicorn.run(create_app(config, model), host=config.host, port=config.port, log_level="warning")
    finally:
        telemetry.shutdown_tracing()


if __name__ == "__main__":
    main()
