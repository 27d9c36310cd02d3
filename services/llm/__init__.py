"""The LLM tier's embedded default: llama.cpp's OpenAI-compatible server
(``llama-cpp-python[server]``) serving Gemma 3 270M Q4_K_M from PyPI packages.

The gateway is a client of any OpenAI-compatible ``/v1/chat/completions``
server; in production that is vLLM with Llama 3.1 8B, and this package is not
used. ``python -m services.llm`` prepares the model (joins the GGUF parts once
and adds ``chat_template.jinja``) and then runs the llama.cpp server in its
own process.
"""
