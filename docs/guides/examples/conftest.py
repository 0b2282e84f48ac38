"""Lets ``pytest docs/guides/examples`` import the guides' example modules by their own names
(``my_engines``), as the docs build does (``conf.py`` puts this directory on ``sys.path``)."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
