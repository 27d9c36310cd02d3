"""Conversation ids: made once, at a conversation's start, and checked wherever a client names one.

An id is ``conv_`` and 24 lowercase hex digits (96 random bits): unguessable, so that an id alone
reveals nothing, and safe as a file name or an object key (no path can hide in it).
"""

from __future__ import annotations

import re
import secrets

from voice_agent.errors import InvalidArgument, quoted

PREFIX = "conv_"
PATTERN = re.compile(r"conv_[0-9a-f]{24}")


def new_conversation_id() -> str:
    return PREFIX + secrets.token_hex(12)


def is_conversation_id(value: str) -> bool:
    return PATTERN.fullmatch(value) is not None


def check_conversation_id(value: str) -> str:
    """``value``, or InvalidArgument saying what an id looks like."""
    if not is_conversation_id(value):
        raise InvalidArgument(f"{quoted(value)} is not a conversation id: 'conv_' and 24 hex digits")
    return value
