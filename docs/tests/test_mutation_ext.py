"""The mutation page's table is built from the committed results (the page itself is built by make docs)."""

from __future__ import annotations

from docs._ext.mutation import score_rows


def test_rows_are_one_per_file_then_the_total() -> None:
    counts = {"mutants": 10, "killed": 8, "timeouts": 1, "survived": 2, "equivalent": 1, "py310": 0}
    results = {
        "files": {"a.py": {**counts, "unspecified": 1, "score": 8 / 9}},
        "total": {**counts, "unspecified": 1, "score": 8 / 9},
    }
    assert score_rows(results) == [
        ["a.py", "10", "8", "1", "2", "1", "0", "1", "88.9%"],
        ["total", "10", "8", "1", "2", "1", "0", "1", "88.9%"],
    ]
