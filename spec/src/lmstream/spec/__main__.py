"""``python -m lmstream.spec``: print the requirement table."""

from __future__ import annotations

from .table import format_requirement_table

if __name__ == "__main__":
    print(format_requirement_table())
