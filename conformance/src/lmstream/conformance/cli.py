"""The ``lmstream`` command (also ``python -m lmstream.conformance``).

::

    lmstream check engine  TARGET [options]   # an engine, or a zero-argument callable returning one
    lmstream check manager TARGET [options]   # a ManagerFactory, e.g. lmstream.reference:StreamManager
    lmstream check round   TARGET [options]   # a RoundStreamFactory

TARGET is ``module:attribute`` (the attribute may be dotted); the current directory is searched first, as
``python -m`` does. Options: ``--timeout SECONDS`` (per check, default 2), ``--strict`` (SHOULD failures
fail the run too), ``--format text|json`` (stdout), ``--junit-xml PATH``, ``-k EXPR`` (see
:mod:`lmstream.conformance.selection`), ``--messages module:attribute`` (the prompt for engine checks: a
sequence of messages, or a zero-argument callable returning one).

Exit status: 0 when every MUST passed (and every SHOULD, under ``--strict``); 1 when one failed; 2 when the
command could not run: a target that cannot be imported or is not a valid target, a bad option (a
non-positive timeout, a malformed ``-k``, one that selects nothing), an unwritable ``--junit-xml`` path. A
status-2 error is one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from .checks import checks_for
from .model import SUITE_VERSION, TargetKind
from .report import render_json, render_junit, render_text
from .runner import DEFAULT_TIMEOUT, run_checks
from .selection import SelectionError, compile_selection
from .targets import TargetError

__all__ = ["console_main", "main", "positive_seconds"]


class _UsageError(Exception):
    """A problem that exits with status 2 and one line on stderr."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{message} (see {self.prog} --help)")


def positive_seconds(text: str) -> float:
    """Parse a timeout option: a positive, finite number of seconds (argparse type)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"the timeout must be a number of seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(
            f"the timeout must be a positive, finite number of seconds, got {text!r}"
        )
    return value


def _parser() -> _Parser:
    parser = _Parser(
        prog="lmstream", description="Check that an engine or a stream manager keeps the lmstream contract."
    )
    parser.add_argument("--version", action="version", version=f"lmstream conformance suite {SUITE_VERSION}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    check = commands.add_parser("check", help="run the conformance checks against a target")
    check.add_argument("kind", choices=[k.value for k in TargetKind], help="what TARGET is")
    check.add_argument("target", metavar="TARGET", help="module:attribute (dotted attribute allowed)")
    check.add_argument(
        "--timeout", type=positive_seconds, default=DEFAULT_TIMEOUT, metavar="SECONDS", help="per check"
    )
    check.add_argument("--strict", action="store_true", help="SHOULD failures fail the run too")
    check.add_argument("--format", choices=["text", "json"], default="text", help="report on stdout")
    check.add_argument("--junit-xml", type=Path, metavar="PATH", help="also write a JUnit XML report")
    check.add_argument("-k", dest="select", metavar="EXPR", help="select checks (e.g. 'ES-3 or aclose')")
    check.add_argument("--messages", metavar="MODULE:ATTR", help="the prompt for engine checks")
    return parser


def _writable(path: Path) -> None:
    """Refuse an unwritable ``--junit-xml`` path before any check runs, without creating the file."""
    if path.exists():
        problem = (
            "it is a directory" if path.is_dir() else None if os.access(path, os.W_OK) else "not writable"
        )
    else:
        folder = path.parent
        problem = (
            f"no directory {str(folder)!r}"
            if not folder.is_dir()
            else None
            if os.access(folder, os.W_OK)
            else f"directory {str(folder)!r} is not writable"
        )
    if problem is not None:
        raise _UsageError(f"cannot write --junit-xml {str(path)!r}: {problem}")


def _run(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    kind = TargetKind(args.kind)
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    if not checks_for(kind):
        raise _UsageError(f"no {kind} checks are registered in this version of the suite")
    keep = None
    if args.select is not None:
        keep = compile_selection(args.select)
        if not any(keep(c) for c in checks_for(kind)):
            raise _UsageError(f"-k {args.select!r} selects none of the {kind} checks")
    if args.junit_xml is not None:
        _writable(args.junit_xml)
    report = run_checks(
        kind,
        args.target,
        timeout=args.timeout,
        select=keep,
        messages=args.messages,
        target_name=args.target,
    )
    try:
        print(
            render_json(report) if args.format == "json" else render_text(report, strict=args.strict),
            flush=True,
        )
    except BrokenPipeError:  # `lmstream check ... | head`: the reader left; the status still tells
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if args.junit_xml is not None:
        try:
            args.junit_xml.write_text(render_junit(report, strict=args.strict), encoding="utf-8")
        except OSError as exc:
            raise _UsageError(
                f"cannot write --junit-xml {str(args.junit_xml)!r}: {exc.strerror or exc}"
            ) from None
    return report.exit_code(strict=args.strict)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0, 1 or 2, see the module docstring)."""
    try:
        return _run(argv)
    except (TargetError, SelectionError, _UsageError) as exc:
        print(f"lmstream: {exc}", file=sys.stderr)
        return 2


def console_main() -> NoReturn:
    """The ``lmstream`` console script and ``python -m lmstream.conformance``: :func:`main`, then exit.

    A target may leave a thread blocked for good (e.g. in ``run_in_executor``); the report names it, and
    the process then exits without waiting for it, so that the command always ends in bounded time.
    """
    before = set(threading.enumerate())
    status = main()
    leftover = [t for t in threading.enumerate() if t not in before and t.is_alive() and not t.daemon]
    if leftover:
        names = ", ".join(repr(t.name) for t in leftover)
        print(
            f"lmstream: exiting without waiting for {len(leftover)} thread(s) the target left: {names}",
            file=sys.stderr,
            flush=True,
        )
        sys.stdout.flush()
        os._exit(status)
    sys.exit(status)
