"""The scoring behind BENCHMARKS.md's correlation-quality row (bench/run.py): pairwise precision and recall,
and the simulated Alertmanager grouping it is compared with."""

from __future__ import annotations

import sys

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import run


def test_pairwise_counts_pairs_of_alerts_not_groups():
    truth = {"a": "F1", "b": "F1", "c": "F1", "d": "F2"}
    perfect = {"a": "x", "b": "x", "c": "x", "d": "y"}
    assert run.pairwise(perfect, truth) == (1.0, 1.0)
    # One incident for everything: all 3 true pairs found, but 3 of the 6 predicted pairs are wrong.
    assert run.pairwise({k: "x" for k in truth}, truth) == (0.5, 1.0)
    # Every alert alone: no wrong pair (precision 1 by convention), no true pair found.
    assert run.pairwise({k: k for k in truth}, truth) == (1.0, 0.0)


def alert(name: str, instance: str, at: str, status: str = "firing") -> dict:
    return {
        "labels": {"alertname": name, "service": "web", "instance": instance},
        "status": status,
        "receivedAt": f"2026-03-02T{at}Z",
    }


def test_alertmanager_grouping_starts_a_new_notification_group_after_everything_resolved():
    records = [
        alert("Down", "a", "08:00:00"),  # the episode starts: 1
        alert("Down", "b", "08:01:00"),  # news, within group_interval
        alert("Down", "c", "08:07:00"),  # 5 min on: b's news goes out: 2
        alert("Down", "a", "09:00:00", "resolved"),  # c's news goes out: 3
        alert("Down", "b", "09:00:00", "resolved"),
        alert("Down", "c", "09:00:00", "resolved"),
        alert("Down", "d", "10:00:00"),  # a new episode: 4
    ]
    clusters, pages = run.alertmanager_groups(records)
    assert pages == 4
    assert clusters[fp("a")] == clusters[fp("b")] == clusters[fp("c")] != clusters[fp("d")]


def fp(instance: str) -> str:
    from correlation.fingerprint import fingerprint

    return fingerprint({"alertname": "Down", "service": "web", "instance": instance})


def test_a_new_run_leads_benchmarks_md_and_the_history_stays_below(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\nIntro.\n\n## Older run\n\nold figures\n")
    run.lead("## `make bench` of today\n\n| # | scenario | verdict |\n", path)
    text = path.read_text()
    assert text.index("of today") < text.index("Older run") and text.startswith(
        "# Benchmarks\n\nIntro.\n\n## `make bench`"
    )
    assert text.endswith("old figures\n")
