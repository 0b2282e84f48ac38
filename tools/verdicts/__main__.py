"""``python -m tools.verdicts``: every known target's verdicts, against the recorded baseline.

::

    python -m tools.verdicts --write          # record baseline.json (before a refactor)
    python -m tools.verdicts                  # run again; exit 1 when an outcome differs
    python -m tools.verdicts --match sdk/     # only the targets whose key contains sdk/
    python -m tools.verdicts --messages       # also print every message that changed (old, new)
    python -m tools.verdicts --dump DIR       # also write each full JSON report under DIR

Outcomes are compared per check (``passed``, ``failed``, ``skipped``); a changed message is listed, not
failed on. Run it from the repository root, with nothing else heavy running (the bounds are the tests').

``baseline.json`` is compact: ``checks`` lists every ``ID check`` name once and ``messages`` every
distinct message once; each target is a string of ``<check index>:<outcome letter>:<message index>``
triples, one per result, in the report's order (``p`` passed, ``f`` failed, ``s`` skipped).
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from .targets import Target, all_targets, local_server

BASELINE = Path(__file__).with_name("baseline.json")

Verdicts = dict[str, dict[str, tuple[str, str]]]
"""Per target key, per ``ID check``: (outcome, message)."""


def _run(targets: list[Target], dump: Path | None) -> Verdicts:
    found: Verdicts = {}
    with local_server(), warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # the SDK engines' clients are collected late
        for target in targets:
            started = time.monotonic()
            report = target.run()
            found[target.key] = {
                f"{r.requirement_id} {r.check.name}": (r.outcome.value, r.message) for r in report.results
            }
            if dump is not None:
                path = dump / (target.key.replace("/", "__") + ".json")
                path.write_text(json.dumps(report.to_json(), indent=1, sort_keys=True), encoding="utf-8")
            print(f"{target.key}: {report.summary_line()} ({time.monotonic() - started:.1f} s)", flush=True)
    return found


def _write(found: Verdicts) -> None:
    checks: dict[str, int] = {}
    messages: dict[str, int] = {}

    def triple(name: str, outcome: str, message: str) -> str:
        index = messages.setdefault(message, len(messages))
        return f"{checks.setdefault(name, len(checks))}:{outcome[0]}:{index}"

    targets = {
        key: " ".join(triple(name, *verdict) for name, verdict in results.items())
        for key, results in found.items()
    }
    data = {
        "python": platform.python_version(),
        "checks": list(checks),
        "messages": list(messages),
        "targets": targets,
    }
    BASELINE.write_text(json.dumps(data, indent=0, sort_keys=True) + "\n", encoding="utf-8")


_OUTCOMES = {"p": "passed", "f": "failed", "s": "skipped"}


def _read() -> tuple[str, Verdicts]:
    data: dict[str, Any] = json.loads(BASELINE.read_text(encoding="utf-8"))
    names: list[str] = data["checks"]
    messages: list[str] = data["messages"]
    verdicts: Verdicts = {}
    for key, encoded in data["targets"].items():
        verdicts[key] = {}
        for triple in encoded.split():
            check, outcome, message = triple.split(":")
            verdicts[key][names[int(check)]] = (_OUTCOMES[outcome], messages[int(message)])
    return data["python"], verdicts


_ADDRESS = re.compile(r"0x[0-9a-f]+")
_COUNT = re.compile(r"\b\d+ (item|token)")


def normal(message: str) -> str:
    """A message without what differs from run to run: object addresses, notes of slow callbacks (timing
    under load), how many items a stream that never ends yielded before the budget ran out."""
    lines = [line for line in message.splitlines() if "slow callback" not in line]
    text = _ADDRESS.sub("0x?", "\n".join(lines))
    return _COUNT.sub(r"N \1", text) if "did not end within" in text or "kept yielding" in text else text


def _indent(text: str) -> str:
    return text.replace("\n", "\n         ")


def compare(recorded: Verdicts, found: Verdicts, *, show_messages: bool) -> int:
    """Print every difference; the number of outcomes that differ."""
    differ = reworded = 0
    for key, checks in found.items():
        before = recorded.get(key)
        if before is None:
            print(f"NEW {key}: not in the baseline")
            differ += 1
            continue
        for name in sorted(set(before) | set(checks)):
            old, new = before.get(name), checks.get(name)
            if old is None or new is None or old[0] != new[0]:
                differ += 1
                print(f"DIFFERS {key} {name}: {old[0] if old else 'absent'} -> {new[0] if new else 'absent'}")
                if new is not None:
                    print(f"    now: {_indent(new[1])}")
            elif normal(old[1]) != normal(new[1]):
                reworded += 1
                if show_messages:
                    print(f"REWORDED {key} {name}:\n    was: {_indent(old[1])}\n    now: {_indent(new[1])}")
    print(f"{len(found)} target(s): {differ} outcome(s) differ, {reworded} message(s) reworded")
    return differ


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.verdicts", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--write", action="store_true", help="write the baseline instead of comparing")
    parser.add_argument("--match", metavar="TEXT", help="only the targets whose key contains TEXT")
    parser.add_argument("--messages", action="store_true", help="print the messages that changed")
    parser.add_argument("--dump", type=Path, metavar="DIR", help="write each full JSON report under DIR")
    args = parser.parse_args(argv)
    targets = [t for t in all_targets() if args.match is None or args.match in t.key]
    if args.dump is not None:
        args.dump.mkdir(parents=True, exist_ok=True)
    found = _run(targets, args.dump)
    if args.write:
        _write({**_read()[1], **found} if args.match and BASELINE.exists() else found)
        print(f"wrote {len(found)} target(s) to {BASELINE}")
        return 0
    python, recorded = _read()
    if python.rsplit(".", 1)[0] != platform.python_version().rsplit(".", 1)[0]:
        print(f"note: the baseline was recorded under Python {python}, this is {platform.python_version()}")
    return 1 if compare(recorded, found, show_messages=args.messages) else 0


if __name__ == "__main__":
    sys.exit(main())
