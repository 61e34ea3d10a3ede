"""Sum py-spy's collapsed stacks (`py-spy record -f raw`, as `python -m bench.calls --profile DIR` writes
them) into where the time goes: the functions with the most self time, and the share of samples whose
stack passes through each of a few named areas (inclusive, so the areas overlap).

    python -m bench.hotspots DIR/kolbridge-100.txt [--top 30]
"""
from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

# an area: a regular expression on a frame "function (file:line)"
AREAS = {
    "thespian (actor hops)": r"thespian/",
    "websockets": r"websockets/",
    "asyncio loop / selectors": r"asyncio/|selectors\.py|uvloop",
    "json / msgspec encode+decode": r"msgspec|json/",
    "our cores (actors/cores)": r"actors/cores/",
    "actor shells (actors/*.py)": r"actors/[a-z_]+\.py",
    "gateway": r"gateway/",
    "database (sqlalchemy, aiosqlite)": r"sqlalchemy/|aiosqlite/|sqlite3",
    "logging (structlog, logging)": r"structlog/|logging/",
    "base64 / binascii": r"base64",
}
FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:]*):?(?P<line>\d*)\)$")


def load(path: Path) -> Counter[tuple[str, ...]]:
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[tuple(stack.split(";"))] += int(count)
    return stacks


def short(frame: str) -> str:
    match = FRAME.match(frame)
    if not match:
        return frame
    file = match["file"]
    for marker in ("site-packages/", "/lib/python3", "/work/"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return f"{match['func']} ({file})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    stacks = load(args.profile)
    total = sum(stacks.values())
    if not total:
        raise SystemExit(f"no samples in {args.profile}")
    own: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    idle = 0
    for stack, count in stacks.items():
        leaf = short(stack[-1])
        own[leaf] += count
        if "select (selectors" in leaf or "poll (" in leaf or leaf.startswith("run_forever (uvloop"):
            idle += count
        joined = ";".join(stack)
        for area, pattern in AREAS.items():
            if re.search(pattern, joined):
                areas[area] += count
    print(f"{total} samples, {100 * idle / total:.1f}% waiting in the selector\n")
    print("Inclusive, by area (a sample counts for every area on its stack):")
    for area, count in areas.most_common():
        print(f"  {100 * count / total:5.1f}%  {area}")
    print(f"\nSelf time, top {args.top}:")
    for leaf, count in own.most_common(args.top):
        print(f"  {100 * count / total:5.1f}%  {leaf}")


if __name__ == "__main__":
    main()
