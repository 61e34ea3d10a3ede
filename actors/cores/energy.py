"""Noise floor of the caller's line (minimum statistics).

Theory of operation: the floor is the smallest frame level seen over the last few blocks of frames
(`blocks` × `block_len` samples, ~2 s while the AI speaks). Speech always has gaps, so the minimum
finds the background under it; unlike a follower that stops adapting above a threshold, it can never
lock itself below a background that got louder (a caller walking into a street), because every block
forgets the old minimum. A lower bound keeps digital silence from making every click "speech".
"""
from __future__ import annotations

import msgspec


class FloorState(msgspec.Struct):
    floor_db: float = 40.0
    block_min: float = 1e9
    block_count: int = 0
    minima: list[float] = msgspec.field(default_factory=list)


class NoiseFloor:
    def __init__(self, state: FloorState, delta_db: float, min_db: float, block_len: int = 25,
                 blocks: int = 4) -> None:
        self.s = state
        self.delta_db = delta_db
        self.min_db = min_db
        self.block_len = block_len
        self.blocks = blocks

    def update(self, level_db: float) -> bool:
        """Track one frame; True if it is above the floor by more than delta (speech-like energy)."""
        s = self.s
        speech = level_db > s.floor_db + self.delta_db
        if level_db < s.block_min:
            s.block_min = level_db
        s.block_count += 1
        if s.block_count >= self.block_len:
            s.minima.append(s.block_min)
            del s.minima[:-self.blocks]
            s.floor_db = max(self.min_db, min(s.minima))
            s.block_min, s.block_count = 1e9, 0
        elif level_db < s.floor_db:
            s.floor_db = max(self.min_db, level_db)  # got quieter: follow at once
        return speech
