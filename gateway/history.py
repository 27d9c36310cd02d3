"""The conversation as the LLM sees it: the system prompt, then what was really said.

A turn the user interrupted keeps only the text of the audio that was sent.
When the estimated size passes the token budget, the oldest exchanges go
first; the system prompt always stays.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CHARS_PER_TOKEN = 4  # a rough English average; the budget is a guard, not a meter


def estimate_tokens(text: str) -> int:
    return len(text) // CHARS_PER_TOKEN + 1


@dataclass
class History:
    system_prompt: str
    token_budget: int
    turns: list[dict[str, str]] = field(default_factory=list)

    def add_user(self, text: str) -> None:
        self.turns.append({"role": "user", "content": text})

    def add_agent(self, text: str) -> None:
        if text.strip():
            self.turns.append({"role": "assistant", "content": text.strip()})

    def messages(self) -> list[dict[str, str]]:
        self._trim()
        return [{"role": "system", "content": self.system_prompt}, *self.turns]

    def _trim(self) -> None:
        budget = self.token_budget - estimate_tokens(self.system_prompt)
        while len(self.turns) > 1 and sum(estimate_tokens(t["content"]) for t in self.turns) > budget:
            self.turns.pop(0)
