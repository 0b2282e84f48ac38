"""The pytest plugin (entry point ``pytest11``: ``lmstream``) and the conformance base classes.

Subclass a base class in your own test file and say what to check::

    from lmstream.conformance import EngineConformance
    from mypkg.engines import MyEngine

    class TestMyEngine(EngineConformance):
        engine = MyEngine            # an engine, or a zero-argument callable returning one (called per test)
        messages = None              # optional: your own prompt (kani engines want kani ChatMessages)
        timeout = 2.0                # optional: seconds per check
        strict = False               # optional: True makes SHOULD failures fail
        not_applicable = {"ES-11": "our engine always yields text"}   # optional, reasons required

One plain (synchronous) test is collected per check, named after its requirement ID and check name
(``test_ES_3_at_most_one_completion_last``), generated from :data:`~lmstream.conformance.checks.CHECKS`;
so pytest's ``-k``, JUnit XML and xdist work as for any test. Each test runs its check with
:func:`~lmstream.conformance.run_check` (the same code as ``lmstream check``): in a worker process (forked
from the test process, so the class attributes are used as the objects they are) and an event loop of its
own, so no pytest-asyncio setting matters and no target can hang, crash or print into the test session
(:mod:`lmstream.conformance.runner` says how, and the bounds). What the target writes to stdout and stderr
is shown as the test's report sections ``lmstream: the target's stdout`` and ``... stderr``.

Outcomes: a passed check passes; a failed MUST fails with the observed-vs-expected message, the spec link
and a reproduction; a failed SHOULD (or SHOULD NOT) fails only in strict mode (``strict = True`` or
``--lmstream-strict``) and is otherwise reported as **xfail** with the same message (visible with
``-rx``); a check that does not apply skips with its reason. A requirement listed in ``not_applicable``
is skipped with the author's reason, which must be a non-empty string; a MUST declared not applicable is
also listed at the end of the run ("MUST requirements declared not applicable: ..."), so it can never be
dropped silently. For the same reason a class may not replace a generated test: defining
``test_ES_3_at_most_one_completion_last`` (or setting that name) in a conformance class, or in a class
it inherits from, makes collecting that class an error naming the test and the ``not_applicable`` entry
that opts out instead. Command-line options: ``--lmstream-strict``, ``--lmstream-timeout SECONDS``
(overrides the classes' ``timeout``).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, cast

import pytest

from lmstream.spec import REQUIREMENTS

from .checks import checks_for
from .cli import positive_seconds
from .model import Check, Outcome, TargetKind
from .runner import DEFAULT_TIMEOUT, run_check
from .targets import TargetError

__all__ = ["EngineConformance", "ManagerConformance", "RoundConformance"]

_NOT_APPLICABLE_KEY = "lmstream_not_applicable_must"
_MISSING = object()
_GENERATED: weakref.WeakSet[Callable[..., None]] = weakref.WeakSet()
"""The tests :func:`_make_test` generated: any other object under a check's test name is an override."""


def _make_test(
    check: Check, owner: type[_Conformance]
) -> Callable[[_Conformance, pytest.FixtureRequest], None]:
    def test(self: _Conformance, request: pytest.FixtureRequest) -> None:
        self._lmstream_run(check, request)  # pyright: ignore[reportPrivateUsage] - generated into the class

    test.__name__ = check.test_name
    test.__qualname__ = f"{owner.__qualname__}.{check.test_name}"
    test.__doc__ = f"{check.requirement_id} ({check.level}): {check.requirement.title}. {check.summary}"
    # pytest reports a test's location from ``place_as``: the author's class, not this module.
    test.place_as = owner  # type: ignore[attr-defined]  # a function attribute pytest reads
    _GENERATED.add(test)
    return test


def _overrides(cls: type[_Conformance]) -> list[Check]:
    """The checks whose generated test ``cls`` or a class it inherits from replaces: under the test's name
    it holds something else (a method the author wrote, ``None``, ...). An override in a base class is
    refused too, though the subclass gets the generated test again: the author meant to replace it."""
    return [
        check
        for check in checks_for(cls.kind)
        if any(_replaced(vars(klass).get(check.test_name, _MISSING)) for klass in cls.__mro__)
    ]


def _replaced(value: object) -> bool:
    return value is not _MISSING and not (callable(value) and value in _GENERATED)


def _overridden_checks_message(cls: type[_Conformance]) -> str | None:
    """The one-line collection error for a class that replaces generated tests, or ``None`` if it does not.

    The message names each replaced test and the ``not_applicable`` entry that opts out of its check.
    """
    replaced = _overrides(cls)
    if not replaced:
        return None
    tests = ", ".join(f"{check.test_name} ({check.requirement_id}, {check.level})" for check in replaced)
    ids = dict.fromkeys(check.requirement_id for check in replaced)  # a requirement may have several checks
    entries = ", ".join(f"{rid!r}: 'why it does not apply'" for rid in ids)
    return (
        f"lmstream: {cls.__qualname__} overrides the generated conformance test(s) {tests}; remove the "
        f"override, and to opt out of a check declare it instead: not_applicable = {{{entries}}}"
    )


class _Conformance:
    """What the three base classes share: settings and the one way a generated test runs its check."""

    kind: ClassVar[TargetKind]
    timeout: ClassVar[float] = DEFAULT_TIMEOUT
    """Seconds per check (``--lmstream-timeout`` overrides it)."""
    grace: ClassVar[float | None] = None
    """Seconds a target gets to react to a cancellation (default: derived from the timeout)."""
    strict: ClassVar[bool] = False
    """Whether a failed SHOULD fails the test (otherwise it is an xfail)."""
    not_applicable: ClassVar[Mapping[str, str]] = {}
    """Requirement IDs declared not applicable to this target, each with its reason (non-empty)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Give every subclass one test per check of its kind (so new checks appear automatically)."""
        super().__init_subclass__(**kwargs)
        for check in checks_for(cls.kind):
            if check.test_name not in cls.__dict__:
                setattr(cls, check.test_name, _make_test(check, cls))

    def lmstream_target(self) -> object:
        """The target to check (each base class names the attribute that supplies it)."""
        raise NotImplementedError

    def lmstream_messages(self) -> Sequence[object] | None:
        """The prompt for engine checks (``None``: the standard prompt)."""
        return None

    def _lmstream_run(self, check: Check, request: pytest.FixtureRequest) -> None:
        rid = check.requirement_id
        reason = self._lmstream_not_applicable().get(rid)
        if reason is not None:
            if check.level.is_mandatory:
                where = f"{request.node.nodeid.split('::')[0]}::{type(self).__qualname__}"
                request.node.user_properties.append((_NOT_APPLICABLE_KEY, f"{rid} ({where}: {reason})"))
            raise pytest.skip.Exception(
                f"{rid} ({check.level}) declared not applicable: {reason}", _use_item_location=True
            )
        config = request.config
        option = config.getoption("lmstream_timeout", None)
        strict = self.strict or bool(config.getoption("lmstream_strict", False))
        try:
            result = run_check(
                check,
                self.lmstream_target(),
                timeout=float(option) if option is not None else self.timeout,
                grace=self.grace,
                messages=self.lmstream_messages(),
            )
        except (TargetError, ValueError) as exc:
            pytest.fail(f"lmstream: {exc}", pytrace=False)
        head = f"{rid} ({check.level}): {check.requirement.title} [check {check.name}]"
        for stream, text in (("stdout", result.stdout), ("stderr", result.stderr)):
            if text:  # shown by pytest like captured output (for failures, or with -rA)
                request.node.add_report_section("call", f"lmstream: the target's {stream}", text)
        if result.outcome is Outcome.PASSED:
            if result.message:
                request.node.add_report_section("call", "lmstream notes", result.message)
            return
        if result.outcome is Outcome.SKIPPED:
            raise pytest.skip.Exception(f"{rid}: {result.message}", _use_item_location=True)
        text = f"{head}\n{result.message}"
        if result.reproduction:
            text += "\nreproduction:\n" + result.reproduction
        if result.counts_as_failure(strict=strict):
            pytest.fail(text, pytrace=False)
        if check.level.is_recommended:
            how = "fails only with strict = True or --lmstream-strict"
            pytest.xfail(f"{rid} is a {check.level}: not met ({how})\n{text}")
        pytest.xfail(f"{rid} is a {check.level}: informational, it never fails\n{text}")

    def _lmstream_not_applicable(self) -> Mapping[str, str]:
        raw: Any = type(self).not_applicable
        owner = type(self).__qualname__
        if not isinstance(raw, Mapping):
            pytest.fail(
                f"{owner}.not_applicable must be a mapping of requirement ID to reason", pytrace=False
            )
        declared = cast(Mapping[object, object], raw)
        for rid, reason in declared.items():
            if not isinstance(rid, str) or rid not in REQUIREMENTS:
                pytest.fail(
                    f"{owner}.not_applicable names {rid!r}, which is not a requirement ID", pytrace=False
                )
            if not isinstance(reason, str) or not reason.strip():
                level = REQUIREMENTS[rid].level
                pytest.fail(
                    f"{owner}.not_applicable[{rid!r}] needs a non-empty reason (it is a {level} requirement)",
                    pytrace=False,
                )
        return cast(Mapping[str, str], declared)


def _supplied(instance: object, attribute: str, method: str) -> object:
    value = getattr(type(instance), attribute, _MISSING)
    if value is _MISSING:
        pytest.fail(
            f"{type(instance).__qualname__} must set `{attribute} = ...` or define {method}()", pytrace=False
        )
    return value


class EngineConformance(_Conformance):
    """Base class: one test per engine check. Set ``engine`` (or define ``make_engine()``); optionally
    ``messages`` (or ``make_messages()``), ``timeout``, ``strict``, ``not_applicable``."""

    kind = TargetKind.ENGINE
    messages: ClassVar[Sequence[object] | None] = None
    """The prompt given to ``stream()`` (``None``: :data:`~lmstream.conformance.STANDARD_PROMPT`)."""

    def make_engine(self) -> object:
        """The engine, or a zero-argument callable returning one; default: the ``engine`` attribute."""
        return _supplied(self, "engine", "make_engine")

    def make_messages(self) -> Sequence[object] | None:
        """The prompt; default: the ``messages`` attribute."""
        return type(self).messages

    def lmstream_target(self) -> object:
        return self.make_engine()

    def lmstream_messages(self) -> Sequence[object] | None:
        return self.make_messages()


class ManagerConformance(_Conformance):
    """Base class: one test per manager check. Set ``factory`` (a ManagerFactory, e.g. a manager class)
    or define ``make_factory()``."""

    kind = TargetKind.MANAGER
    explore_examples: ClassVar[int] = 0
    """Examples of the hypothesis exploration of the manager's life
    (:func:`~lmstream.conformance.explore_manager`), collected as one more test,
    ``test_explore_lifecycle``; 0 (the default): off."""
    explore_seed: ClassVar[int | None] = 0
    """The exploration's seed (``None``: a new one each run)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.explore_examples > 0 and "test_explore_lifecycle" not in cls.__dict__:
            setattr(cls, "test_explore_lifecycle", _explore_lifecycle)  # noqa: B010  # a generated test

    def make_factory(self) -> object:
        """The manager factory; default: the ``factory`` attribute."""
        return _supplied(self, "factory", "make_factory")

    def lmstream_target(self) -> object:
        return self.make_factory()


def _explore_lifecycle(self: ManagerConformance) -> None:
    """The manager's life explored as a hypothesis state machine (opt in: ``explore_examples = N``)."""
    from .explore import ExplorationFailure, explore_manager

    owner = type(self)
    failure: str | None = None
    try:
        explore_manager(self.make_factory(), max_examples=owner.explore_examples, seed=owner.explore_seed)
    except ExplorationFailure as exc:
        failure = str(exc)
    except RuntimeError as exc:  # hypothesis is not installed; the message says how to install it
        pytest.skip(str(exc))
    if failure is not None:
        pytest.fail(f"lmstream exploration: {failure}", pytrace=False)


class RoundConformance(_Conformance):
    """Base class: one test per round check. Set ``factory`` (a RoundStreamFactory) or define
    ``make_factory()``."""

    kind = TargetKind.ROUND

    def make_factory(self) -> object:
        """The round-stream factory; default: the ``factory`` attribute."""
        return _supplied(self, "factory", "make_factory")

    def lmstream_target(self) -> object:
        return self.make_factory()


# ------------------------------------------------------------------------------------------------ hooks
def pytest_addoption(parser: pytest.Parser) -> None:
    """``--lmstream-strict`` and ``--lmstream-timeout``."""
    group = parser.getgroup("lmstream", "lmstream conformance")
    group.addoption(
        "--lmstream-strict",
        action="store_true",
        dest="lmstream_strict",
        help="failed SHOULD checks fail the test",
    )
    group.addoption(
        "--lmstream-timeout",
        type=positive_seconds,
        dest="lmstream_timeout",
        metavar="SECONDS",
        help="seconds per check",
    )


class _NotApplicableSummary:
    """Collects the MUSTs declared not applicable (from reports, so it works under xdist) and lists them."""

    def __init__(self) -> None:
        self.declared: dict[str, None] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for name, value in report.user_properties:
            if name == _NOT_APPLICABLE_KEY:
                self.declared[str(value)] = None

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.declared:
            terminalreporter.write_sep("=", "lmstream")
            terminalreporter.write_line(
                f"MUST requirements declared not applicable: {'; '.join(self.declared)}"
            )


class _OverridingClass(pytest.Class):
    """A conformance class that replaces a generated test: collecting it is an error, in one line."""

    def collect(self) -> list[pytest.Item | pytest.Collector]:
        message = _overridden_checks_message(cast("type[_Conformance]", self.obj))
        raise self.CollectError(message or "lmstream: a generated conformance test is overridden")


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(
    collector: pytest.Module | pytest.Class, name: str, obj: object
) -> pytest.Class | None:
    """Collect a conformance class that overrides a generated test as an error (see the module docs)."""
    if not (isinstance(obj, type) and issubclass(obj, _Conformance) and collector.istestclass(obj, name)):
        return None
    if _overridden_checks_message(obj) is None:
        return None
    # from_parent takes **kw, which pytest leaves untyped.
    return _OverridingClass.from_parent(collector, name=name, obj=obj)  # pyright: ignore[reportUnknownMemberType]


def pytest_configure(config: pytest.Config) -> None:
    """Register the terminal summary of MUSTs declared not applicable."""
    config.pluginmanager.register(_NotApplicableSummary(), "lmstream-not-applicable")
