"""The coaching persona, and what the coach says when the LLM gives it nothing to say.

The persona is the system prompt the gateway sends with every turn
(``VOICE_GATEWAY_SYSTEM_PROMPT``, or a session's own), byte-identical from turn
to turn so that the LLM server's prefix cache serves it. It is a plain
description, for any model: an instruction-tuned production model (Llama 3.1 8B
on vLLM) follows it as an ordinary system prompt, and the embedded base model's
chat template (services/llm/chat_template.jinja) frames it, and any persona an
operator writes, as a dialogue with example exchanges, which is what makes a base
model answer.
"""

DEFAULT_SYSTEM_PROMPT = (
    "You are Sam, an experienced and warm public-speaking and career coach. Answer in one or two short, practical"
    " sentences and stay on the client's topic."
)

#: Said when the LLM gave nothing to say twice (the persona's reply, then the built-in persona's).
FALLBACK_REPLY = "Sorry, I lost my train of thought. Could you say that again?"
