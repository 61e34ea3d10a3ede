"""What the AI said, and what the caller heard of it.

Theory of operation: the AI's transcript arrives as deltas beside its audio; the words of an item are
kept until its transcript is done. When the caller cuts the AI (a barge-in), the item is truncated at
what the caller heard and its words are shortened in proportion to the audio they heard — that is
what the conversation records, not what was generated. When a lost link cut an answer, what was
received still plays to its end: the item is remembered as dropped and recorded, as heard, when its
playout finishes. Only the recent items are kept. Time is not needed: every step is an event.
"""
from __future__ import annotations

import msgspec

ITEMS_KEPT = 8
CUTS_KEPT = 16


class SpokenState(msgspec.Struct):
    so_far: dict[str, str] = msgspec.field(default_factory=dict)  # assistant item → transcript so far
    truncated: dict[str, int] = msgspec.field(default_factory=dict)  # assistant item → heard ms, at its cut
    dropped_item: str = ""  # the item a lost link cut: recorded as heard when its playout finishes
    truncate_audio_end_ms: list[int] = msgspec.field(default_factory=list)


class Spoken:
    def __init__(self, state: SpokenState) -> None:
        self.state = state

    def delta(self, item_id: str, text: str) -> None:
        so_far = self.state.so_far
        if len(so_far) > ITEMS_KEPT and item_id not in so_far:
            del so_far[next(iter(so_far))]
        so_far[item_id] = so_far.get(item_id, "") + text

    def done(self, item_id: str) -> bool:
        """The item's transcript is complete: False if it was already recorded at a cut."""
        self.state.so_far.pop(item_id, None)
        return item_id not in self.state.truncated

    def text(self, item_id: str) -> str:
        return self.state.so_far.get(item_id, "")

    def cut(self, item_id: str, end_ms: int, generated_ms: int) -> str:
        """Truncated at `end_ms` of `generated_ms`: the words the caller heard (in proportion)."""
        so_far = self.text(item_id)
        share = end_ms / generated_ms if generated_ms > 0 else 1.0
        heard = so_far[: int(round(len(so_far) * min(1.0, share)))].rstrip()
        self.state.so_far.pop(item_id, None)
        self.state.truncate_audio_end_ms.append(end_ms)
        self.state.truncated[item_id] = end_ms
        if len(self.state.truncated) > CUTS_KEPT:
            del self.state.truncated[next(iter(self.state.truncated))]
        return heard

    def dropped(self, item_id: str) -> str:
        """A lost link cut the item: what was received plays on; its words so far."""
        self.state.dropped_item = item_id
        return self.text(item_id)

    def finished(self, item_id: str) -> str | None:
        """The item's playout finished: its words if it was the dropped one (now heard), else None."""
        if not item_id or item_id != self.state.dropped_item:
            return None
        text = self.text(item_id)
        self.state.dropped_item = ""
        self.state.so_far.pop(item_id, None)
        return text
