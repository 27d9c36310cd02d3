"""The conversation gateway: one conversation per client stream, each turn across ASR, the LLM and TTS,
with barge-in. docs/architecture.md describes it whole, its module map included.
"""
