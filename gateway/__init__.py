"""The conversation gateway: one bidirectional ``Converse`` stream per
conversation, running each turn across ASR, the LLM and TTS, with barge-in.

Not built yet: it arrives with the conversation-turn issue (#4). The package
exists so that the layout shows the architecture from the start.
"""
