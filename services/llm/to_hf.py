"""Converts the embedded GGUF into a Hugging Face checkpoint that vLLM can serve.

vLLM 0.32 cannot load GGUF. This runs in the vLLM venv (transformers, gguf,
accelerate): it dequantises the GGUF with transformers, clears the
quantisation state so that ``save_pretrained`` writes plain weights, adds the
project's dialogue chat template, and makes Gemma's end-of-turn token (106)
an EOS, as vLLM needs.

Usage: python services/llm/to_hf.py GGUF_FILE OUT_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

END_OF_TURN_ID = 106
CHAT_TEMPLATE = Path(__file__).resolve().parent / "chat_template.jinja"


def convert(gguf_file: Path, out_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if (out_dir / "config.json").exists():
        print(f"{out_dir} is already converted")
        return
    print(f"converting {gguf_file} -> {out_dir} (dequantising; about a minute)", flush=True)
    kwargs = {"gguf_file": gguf_file.name}
    tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(gguf_file.parent, **kwargs)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tokenizer.chat_template = CHAT_TEMPLATE.read_text()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    generation = out_dir / "generation_config.json"
    config = json.loads(generation.read_text()) if generation.exists() else {}
    eos = config.get("eos_token_id", [])
    eos = eos if isinstance(eos, list) else [eos]
    config["eos_token_id"] = sorted({*eos, END_OF_TURN_ID})
    generation.write_text(json.dumps(config, indent=2))
    print("done", flush=True)


if __name__ == "__main__":
    convert(Path(sys.argv[1]), Path(sys.argv[2]))
