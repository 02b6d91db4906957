"""Print the chaos ledger table and write it into docs/operations/reliability.md between its markers.

    python -m tests.chaos.report [--write]

Reads the rows the fault tests saved (FIREBREAK_CHAOS_RESULTS, default .firebreak/chaos/).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from datetime import UTC, datetime

from tests.chaos.harness import RESULTS, ROOT

BEGIN = "<!-- chaos-table:begin -->"
END = "<!-- chaos-table:end -->"
ORDER = ["killed", "kafka", "redis_stopped", "flushed", "joins", "receiver", "storm", "whole_suite"]


def rows() -> list[dict]:
    found = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("test_*.json"))]
    return sorted(found, key=lambda r: next((i for i, k in enumerate(ORDER) if k in r["command"]), len(ORDER)))


def table(found: list[dict]) -> str:
    head = (
        "| fault | alerts sent | accepted | accounted for | lost | duplicated | read model missing | "
        "steps run twice | steps missing | pages lost | pages received twice | pages dead-lettered | reproduce |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in found:
        lines.append(
            f"| {r['fault']} | {r['sent']:,} | {r['accepted']:,} | {r['accounted']:,} | **{r['lost']}** | **{r['duplicated']}** | "
            f"{r['readmodel_missing']} | **{r['steps_run_twice']}** | {r['steps_missing']} | **{r['pages_lost']}** | "
            f"{r['pages_received_twice']} | {r['pages_dead_lettered']} | `{r['command']}` |"
        )
    notes = [f"- *{r['fault']}*: " + "; ".join(r["notes"]) for r in found if r["notes"]]
    commits = sorted({r.get("commit") or "unknown" for r in found})  # as each test saw it when it ran
    full = all(r.get("full") for r in found)
    ran = datetime.fromtimestamp(max(r["at"] for r in found), UTC)
    stamp = (
        f"{'Full run (`make chaos`)' if full else 'Short run (CI)'} ending {ran:%Y-%m-%d %H:%M} UTC, "
        f"commit {', '.join(commits)}, {platform.machine()}, Python {platform.python_version()}."
    )
    return "\n".join([stamp, "", *lines, "", *notes])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="replace the table in docs/operations/reliability.md")
    args = parser.parse_args()
    found = rows()
    if not found:
        sys.exit(f"no chaos results in {RESULTS}; run `make chaos` first")
    text = table(found)
    print(text)
    if args.write:
        doc = ROOT / "docs/operations/reliability.md"
        content = doc.read_text()
        start, end = content.index(BEGIN) + len(BEGIN), content.index(END)
        doc.write_text(content[:start] + "\n" + text + "\n" + content[end:])
        print(f"\nwrote the table into {doc}")


if __name__ == "__main__":
    main()
