"""The pytest plugin: one test per check named after its requirement, opt-outs shown, SHOULDs strict-only."""

from __future__ import annotations

import textwrap
import xml.etree.ElementTree as ET

import pytest

from lmstream.conformance import checks_for
from lmstream.conformance.model import TargetKind

pytest_plugins = ["pytester"]

N_ENGINE = len(checks_for(TargetKind.ENGINE))

_HEADER = """
import asyncio
from lmstream.conformance import EngineConformance
from lmstream.conformance.examples import EchoEngine
from lmstream.reference import ChatMessage, Completion

async def _items(*items):
    for item in items:
        await asyncio.sleep(0)
        yield item

def done(text):
    return Completion(ChatMessage("assistant", text), 1, 2)

class YieldsBytes:
    def stream(self, messages, functions=None, **hyperparams):
        return _items("Hel", b"lo", done("Hel"))

class TextMismatch:
    def stream(self, messages, functions=None, **hyperparams):
        return _items("Hel", "lo", done("Hello!"))
"""


def _write(pytester: pytest.Pytester, body: str) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_conformance=_HEADER + textwrap.dedent(body))


def test_one_test_per_check_named_after_its_requirement(pytester: pytest.Pytester) -> None:
    _write(pytester, "class TestEcho(EngineConformance):\n    engine = EchoEngine\n")
    result = pytester.runpytest("-v", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=N_ENGINE)
    result.stdout.fnmatch_lines(
        [
            "*test_conformance.py::TestEcho::test_ES_1_returns_async_iterable PASSED*",
            "*test_conformance.py::TestEcho::test_ES_3_at_most_one_completion_last PASSED*",
            "*test_conformance.py::TestEcho::test_ES_11_a_completion_alone_is_a_stream PASSED*",
        ]
    )


def test_a_broken_engine_fails_exactly_its_tests(pytester: pytest.Pytester) -> None:
    _write(pytester, "class TestBroken(EngineConformance):\n    engine = YieldsBytes\n    timeout = 1.0\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=N_ENGINE - 1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*TestBroken.test_ES_2_items_are_tokens_or_completions*",
            "ES-2 (MUST): every item is a token or a completion [[]check items_are_tokens_or_completions[]]",
            "expected: every item is a str*",
            "observed: item 2 of 3: yielded bytes b'lo'*",
            "spec: file://*/spec.html#es-2",
            "reproduction:",
            "import asyncio",
        ]
    )


def test_k_selects_by_requirement(pytester: pytest.Pytester) -> None:
    _write(pytester, "class TestEcho(EngineConformance):\n    engine = EchoEngine\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "-k", "ES_3", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_ES_3_at_most_one_completion_last PASSED*"])


def test_not_applicable_is_a_visible_skip_and_a_must_is_listed(pytester: pytest.Pytester) -> None:
    _write(
        pytester,
        """
        class TestEcho(EngineConformance):
            engine = EchoEngine
            not_applicable = {
                "ES-11": "our engine always yields text",
                "ES-5": "our iterator cannot be closed",
            }
        """,
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(passed=N_ENGINE - 2, skipped=2)
    result.stdout.fnmatch_lines(
        [
            "*= lmstream =*",
            "MUST requirements declared not applicable: ES-5 (test_conformance.py::TestEcho: our iterator "
            "cannot be closed)",
            "SKIPPED [[]1[]] test_conformance.py:*: ES-5 (MUST) declared not applicable: our iterator cannot "
            "be closed",
            "SKIPPED [[]1[]] test_conformance.py:*: ES-11 (MAY) declared not applicable: our engine always "
            "yields text",
        ]
    )
    assert "ES-11 (test_conformance" not in result.stdout.str()  # only MUSTs are listed


@pytest.mark.parametrize(
    ("declaration", "message"),
    [
        (
            '{"ES-5": ""}',
            "TestEcho.not_applicable['ES-5'] needs a non-empty reason (it is a MUST requirement)",
        ),
        ('{"ES-99": "typo"}', "TestEcho.not_applicable names 'ES-99', which is not a requirement ID"),
        ('["ES-5"]', "TestEcho.not_applicable must be a mapping of requirement ID to reason"),
    ],
)
def test_an_opt_out_needs_a_reason_and_a_real_id(
    pytester: pytest.Pytester, declaration: str, message: str
) -> None:
    _write(
        pytester,
        f"class TestEcho(EngineConformance):\n    engine = EchoEngine\n    not_applicable = {declaration}\n",
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-k", "ES_5")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*{message.replace('[', '[[]')}*"])


def test_a_should_failure_is_an_xfail_unless_strict(pytester: pytest.Pytester) -> None:
    _write(
        pytester,
        """
        class TestLax(EngineConformance):
            engine = TextMismatch

        class TestStrict(EngineConformance):
            engine = TextMismatch
            strict = True
        """,
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-rx")
    result.assert_outcomes(passed=2 * N_ENGINE - 2, xfailed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*XFAIL*TestLax::test_ES_9_completion_text_is_token_text*ES-9 is a SHOULD: not met*"]
    )
    strict = pytester.runpytest("-p", "no:cacheprovider", "--lmstream-strict", "-k", "TestLax and ES_9")
    strict.assert_outcomes(failed=1)


def test_a_class_without_an_engine_says_what_to_set(pytester: pytest.Pytester) -> None:
    _write(pytester, "class TestNothing(EngineConformance):\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "-k", "ES_1_")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*TestNothing must set `engine = ...` or define make_engine()*"])


def test_make_engine_messages_and_timeout_option(pytester: pytest.Pytester) -> None:
    _write(
        pytester,
        """
        class TestEcho(EngineConformance):
            def make_engine(self):
                return EchoEngine(pause=0.0)

            def make_messages(self):
                return [ChatMessage("user", "one two three four")]
        """,
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--lmstream-timeout", "1.5", "-k", "ES_11", "-rA")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*the stream yielded 4 token(s)*"])


def test_a_timeout_option_that_is_not_positive_is_refused(pytester: pytest.Pytester) -> None:
    _write(pytester, "class TestEcho(EngineConformance):\n    engine = EchoEngine\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--lmstream-timeout", "0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*the timeout must be a positive, finite number of seconds from 0.01 to 3600, got '0'*"]
    )


def test_junit_xml_names_the_requirements(pytester: pytest.Pytester) -> None:
    _write(pytester, "class TestBroken(EngineConformance):\n    engine = YieldsBytes\n")
    pytester.runpytest("-p", "no:cacheprovider", "--junit-xml=report.xml")
    root = ET.parse(pytester.path / "report.xml").getroot()
    cases = {case.get("name"): case for case in root.iter("testcase")}
    assert len(cases) == N_ENGINE
    assert cases["test_ES_2_items_are_tokens_or_completions"].find("failure") is not None
    assert cases["test_ES_1_returns_async_iterable"].find("failure") is None


_OVERRIDE_MESSAGE = (
    "lmstream: TestMine overrides the generated conformance test(s) test_SM_10_break_releases_everything "
    "(SM-10, MUST); remove the override, and to opt out of a check declare it instead: "
    "not_applicable = {'SM-10': 'why it does not apply'}"
)


def test_overriding_a_generated_check_fails_collection_naming_the_opt_out(pytester: pytest.Pytester) -> None:
    _write(
        pytester,
        """
        from lmstream.conformance import ManagerConformance
        from lmstream.reference import StreamManager

        class TestMine(ManagerConformance):
            factory = StreamManager

            def test_SM_10_break_releases_everything(self):
                pass

        class TestEchoToo(EngineConformance):
            engine = EchoEngine
        """,
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1, passed=0)
    assert result.ret == pytest.ExitCode.INTERRUPTED  # a collection error stops the run before any test
    lines = result.stdout.lines
    # The error's whole report is the one line, between the section's header and the next section.
    at = lines.index(_OVERRIDE_MESSAGE)
    assert lines[at - 1].startswith("_") and "ERROR collecting test_conformance.py" in lines[at - 1]
    assert lines[at + 1].startswith("=")
    result.stdout.fnmatch_lines(["ERROR test_conformance.py::TestMine"])
    # The class that overrides nothing is collected as before: its tests are the 11 collected items.
    result.stdout.fnmatch_lines([f"collected {N_ENGINE} items / 1 error"])


@pytest.mark.parametrize(
    ("classes", "named"),
    [
        # an override inherited from the author's own base class
        (
            "class Base(EngineConformance):\n"
            "    def test_ES_3_at_most_one_completion_last(self):\n"
            "        pass\n"
            "class TestMine(Base):\n"
            "    engine = EchoEngine\n",
            "test_ES_3_at_most_one_completion_last (ES-3, MUST)",
        ),
        # the name set to something that is not a test, and two checks at once
        (
            "class TestMine(EngineConformance):\n"
            "    engine = EchoEngine\n"
            "    test_ES_1_returns_async_iterable = None\n"
            "    @staticmethod\n"
            "    def test_ES_10_no_empty_tokens():\n"
            "        pass\n",
            "test_ES_1_returns_async_iterable (ES-1, MUST), test_ES_10_no_empty_tokens (ES-10, SHOULD NOT)",
        ),
    ],
)
def test_every_way_of_replacing_a_generated_test_is_refused(
    pytester: pytest.Pytester, classes: str, named: str
) -> None:
    _write(pytester, classes)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"lmstream: TestMine overrides the generated conformance test(s) {named};*"])


def test_a_subclass_of_a_conformance_class_gets_the_generated_tests_again(pytester: pytest.Pytester) -> None:
    _write(
        pytester,
        """
        class TestEcho(EngineConformance):
            engine = EchoEngine

        class TestEchoAgain(TestEcho):
            not_applicable = {"ES-11": "shown"}
        """,
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2 * N_ENGINE - 1, skipped=1)
