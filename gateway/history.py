"""The conversation as the LLM sees it: the system prompt, then what was really said.

A turn the user interrupted keeps only the text of the audio that was sent.
When the estimated size passes the token budget, the oldest exchanges go
first, a third of the budget at a time (the LLM's prefix cache then holds the
prompt on most turns; the conversation trims at the end of a reply and has the
new prompt prefilled while the user speaks); the system prompt always stays.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CHARS_PER_TOKEN = 4  # a rough English average; the budget is a guard, not a meter
TRIM_TO = 2 / 3  # of the budget, once it is passed (see History.trim)
NEXT_TURN_ROOM = 1 / 6  # of the budget: what a user turn is given room for (200 tokens of 1200)


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
        self.trim()
        return [{"role": "system", "content": self.system_prompt}, *self.turns]

    def trim(self, room_for_next: bool = False) -> bool:
        """Past the budget, drops the oldest turns down to TRIM_TO of it, so that the history then
        starts with a user turn; True if it did. ``room_for_next``: trims already when the next user
        turn might not fit, so that the trim happens when asked (at the end of a reply), not in the
        next turn. Each trim changes the prompt right after the system prompt, and the
        LLM server then prefills the whole history again (its prefix cache keeps only what is common
        to the last prompt): dropping one turn per turn made every turn of a long session pay that
        (4-5 s per turn after the 45th on the embedded model); a third at once pays it every few."""
        budget = self.token_budget - estimate_tokens(self.system_prompt)
        if self._size() + (budget * NEXT_TURN_ROOM if room_for_next else 0) <= budget:
            return False
        while len(self.turns) > 1 and (self._size() > budget * TRIM_TO or self.turns[0]["role"] != "user"):
            gone = self.turns.pop(0)
            self._agent = {turn_id: entry for turn_id, entry in self._agent.items() if entry is not gone}
        return True

    def _size(self) -> int:
        return sum(estimate_tokens(turn["content"]) for turn in self.turns)
