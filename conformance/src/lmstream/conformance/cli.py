"""The ``lmstream`` command (placeholder until the conformance suite lands)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    print("lmstream: the conformance suite is not built yet", file=sys.stderr)
    return 2
