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
    _agent: dict[int, dict[str, str]] = field(default_factory=dict)  # an agent turn's entry, by turn id

    def add_user(self, text: str) -> None:
        self.turns.append({"role": "user", "content": text})

    def add_agent(self, text: str, turn_id: int = 0) -> None:
        if text.strip():
            entry = {"role": "assistant", "content": text.strip()}
            self.turns.append(entry)
            if turn_id:
                self._agent[turn_id] = entry

    def replace_agent(self, turn_id: int, text: str) -> None:
        """What the client says it played of turn ``turn_id`` replaces what the gateway thought it played
        (nothing played: the entry goes); a turn no longer in the history (trimmed) changes nothing."""
        entry = self._agent.pop(turn_id, None)
        if entry is None or not any(turn is entry for turn in self.turns):
            return
        if text.strip():
            entry["content"] = text.strip()
            self._agent[turn_id] = entry
        else:
            self.turns = [turn for turn in self.turns if turn is not entry]

    def messages(self) -> list[dict[str, str]]:
        self._trim()
        return [{"role": "system", "content": self.system_prompt}, *self.turns]

    def _trim(self) -> None:
        budget = self.token_budget - estimate_tokens(self.system_prompt)
        while len(self.turns) > 1 and sum(estimate_tokens(t["content"]) for t in self.turns) > budget:
            gone = self.turns.pop(0)
            self._agent = {turn_id: entry for turn_id, entry in self._agent.items() if entry is not gone}
