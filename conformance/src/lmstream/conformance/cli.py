"""The ``lmstream`` command (also ``python -m lmstream.conformance``).

::

    lmstream check engine  TARGET [options]   # an engine, or a zero-argument callable returning one
    lmstream check manager TARGET [options]   # a ManagerFactory, e.g. lmstream.reference:StreamManager
    lmstream check round   TARGET [options]   # a RoundStreamFactory

TARGET is ``module:attribute`` (the attribute may be dotted); the current directory is searched first, as
``python -m`` does. The target is imported in a worker process, never in the command's own (see
:mod:`lmstream.conformance.runner`). Options: ``--timeout SECONDS`` (per check, default 2, from 0.01 to
3600), ``--import-timeout SECONDS`` (for importing and validating the target, default 60), ``--strict``
(SHOULD failures fail the run too), ``--format text|json`` (stdout), ``--junit-xml PATH``, ``-k EXPR`` (see
:mod:`lmstream.conformance.selection`), ``--messages module:attribute`` (the prompt for engine checks: a
sequence of messages, or a zero-argument callable returning one).

Exit status: 0 when every MUST passed (and every SHOULD, under ``--strict``); 1 when one failed, whatever
way the target failed it (it raised, hung, blocked, exited or crashed the worker), or when the user
interrupted the run (Ctrl-C: the checks that ended before are reported, and one line on stderr says the
report is partial); 2 when the command could not run: a target that cannot be imported (its import
failed, hung past ``--import-timeout`` or ended the process) or is not a valid target, a bad option (a
timeout out of range, a malformed ``-k``, one that selects nothing), an unwritable ``--junit-xml`` path. A
status-2 error is one line on stderr, never a traceback; with ``--format json`` stdout also holds a JSON
object ``{"error": ..., "status": 2, ...}``. The report on stdout is always whole and valid: nothing the
target writes reaches it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn, TextIO

from lmstream.spec import SPEC_VERSION

from .checks import checks_for
from .model import SUITE_VERSION, TargetKind
from .report import render_json, render_junit, render_text
from .runner import DEFAULT_IMPORT_TIMEOUT, DEFAULT_TIMEOUT, MAX_TIMEOUT, MIN_TIMEOUT, run_checks
from .selection import SelectionError, compile_selection
from .targets import TargetError

__all__ = ["console_main", "main", "positive_seconds"]


class _UsageError(Exception):
    """A problem that exits with status 2 and one line on stderr."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{message} (see {self.prog} --help)")


def positive_seconds(text: str) -> float:
    """Parse a timeout option (argparse type): a finite number of seconds from :data:`~.runner.MIN_TIMEOUT`
    to :data:`~.runner.MAX_TIMEOUT`."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"the timeout must be a number of seconds, got {text!r}") from None
    if not MIN_TIMEOUT <= value <= MAX_TIMEOUT:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(
            f"the timeout must be a positive, finite number of seconds from {MIN_TIMEOUT:g} to "
            f"{MAX_TIMEOUT:g}, got {text!r}"
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
    check.add_argument(
        "--import-timeout",
        type=positive_seconds,
        default=DEFAULT_IMPORT_TIMEOUT,
        metavar="SECONDS",
        help="for importing and validating the target",
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


def _run_command(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    kind = TargetKind(args.kind)
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    chosen = checks_for(kind)
    if not chosen:
        raise _UsageError(f"no {kind} checks are registered in this version of the suite")
    if args.select is not None:
        keep = compile_selection(args.select)
        chosen = tuple(c for c in chosen if keep(c))
        if not chosen:
            raise _UsageError(f"-k {args.select!r} selects none of the {kind} checks")
    if args.junit_xml is not None:
        _writable(args.junit_xml)
    report = run_checks(
        kind,
        args.target,
        checks=chosen,
        timeout=args.timeout,
        messages=args.messages,
        target_name=args.target,
        import_timeout=args.import_timeout,
        keep_partial=True,
    )
    _write(
        sys.stdout, render_json(report) if args.format == "json" else render_text(report, strict=args.strict)
    )
    if args.junit_xml is not None:
        try:
            args.junit_xml.write_text(render_junit(report, strict=args.strict), encoding="utf-8")
        except OSError as exc:
            raise _UsageError(
                f"cannot write --junit-xml {str(args.junit_xml)!r}: {exc.strerror or exc}"
            ) from None
    if report.interrupted:
        print(
            f"lmstream: interrupted: the report covers the {len(report.results)} of {len(chosen)} "
            "check(s) that ended before",
            file=sys.stderr,
            flush=True,
        )
    return report.exit_code(strict=args.strict)


def _write(stream: TextIO | None, text: str) -> None:
    """Print ``text`` and a newline; a reader that left (``lmstream check ... | head``) or a closed stdout
    is not an error (the exit status still tells)."""
    if stream is None:  # the command was started with stdout closed
        return
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        stream.write(text.encode(encoding, errors="backslashreplace").decode(encoding) + "\n")
        stream.flush()
    except BrokenPipeError:
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
    except (OSError, ValueError):  # a closed or unusable stdout
        pass


def _wants_json(argv: Sequence[str]) -> bool:
    """Whether the command line asks for ``--format json`` (read before parsing, which may fail)."""
    for position, arg in enumerate(argv):
        if arg == "--format=json" or (arg == "--format" and argv[position + 1 : position + 2] == ["json"]):
            return True
    return False


def _error_object(message: str, argv: Sequence[str]) -> str:
    return json.dumps(
        {
            "error": message,
            "status": 2,
            "suite_version": SUITE_VERSION,
            "spec_version": SPEC_VERSION,
            "argv": list(argv),
        },
        indent=2,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0, 1 or 2, see the module docstring)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        return _run_command(arguments)
    except (TargetError, SelectionError, _UsageError) as exc:
        message = " ".join(str(exc).split())  # one line, whatever the exception says
        print(f"lmstream: {message}", file=sys.stderr, flush=True)
        if _wants_json(arguments):
            _write(sys.stdout, _error_object(message, arguments))
        return 2


def console_main() -> NoReturn:
    """The ``lmstream`` console script and ``python -m lmstream.conformance``: :func:`main`, then exit.

    The checks run in worker processes, so no thread of the target can be left in this one; only when they
    ran in this process (:mod:`~lmstream.conformance.runner`: Windows, a target with no importable name)
    may one be, and the process then exits without waiting for it, so that the command always ends in
    bounded time. A second Ctrl-C while the partial report is printed exits with status 1 at once.
    """
    before = set(threading.enumerate())
    try:
        status = main()
    except KeyboardInterrupt:
        status = 1
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
