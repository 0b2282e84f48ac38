"""Mutation testing of the reference against the conformance suite: ``make mutation``.

Each *mutant* is the reference (``reference/src/lmstream/reference``) with one small change to one of its
files (:data:`MUTATED_FILES`); it is run through ``lmstream check manager`` and ``lmstream check round``,
the conformance suite as users run it (never the reference's own unit tests). A mutant is *killed* when a
check fails, MUST or SHOULD (the reference keeps both), or the suite cannot run, or does not finish within
the mutant's bound (*killed by timeout*); it *survives* when both suites pass. A survivor either shows a
behaviour the suite does not check, or is
*equivalent* (no observable behaviour changes) and then listed in ``tools/mutation/equivalent.txt`` with the
reason; an unlisted survivor fails the run.

Why a mutator of our own: the maintained tools cannot run this code faithfully. mutmut 3 compiles every
mutant into one copy behind a *trampoline* per function, so every call gains a frame and an async
generator becomes a relay around the real one: the reference finds the task stepping its iterator by
following await chains down to that very generator and tells a stop from inside its own step by walking
frames, so under mutmut the suite would test other code (and mutmut runs pytest, not a command).
Cosmic Ray writes each mutant over the working copy (one at a time per clone), names mutants by their
occurrence index, which moves whenever the code above changes, and has no statement deletion, ``return
None``, handler broadening or enum operators. Here each mutant is a copy of the package with one edit,
placed first on ``PYTHONPATH`` of the suite's process (the installed package is untouched, so mutants run
side by side), and each is named stably: file, function, operator, and the original and mutated source of
the node, never a line number.

Operators (:data:`OPERATORS`; the names are part of a mutant's ID):

``compare``
    a comparison flipped to its negation: ``==``/``!=``, ``<``/``>=``, ``>``/``<=``.
``identity``
    an identity or membership test flipped: ``is``/``is not``, ``in``/``not in``.
``and_or``
    a boolean operator swapped: ``and``/``or``.
``not``
    a ``not`` dropped: ``not x`` becomes ``x``.
``bool``
    a boolean constant flipped: ``True``/``False``.
``condition``
    the condition of an ``if``, ``while`` or conditional expression negated (when it is not already a
    comparison, a ``not`` or a constant, which the operators above flip).
``statement``
    a simple statement deleted (replaced by ``pass``): an expression statement (a call, an ``await``), an
    assignment, ``raise``, ``return``, ``del``, ``break``, ``continue``.
``block``
    a block emptied (replaced by ``pass``): the body of an ``if``, ``else``, loop, ``with``, ``try``,
    ``except`` or ``finally`` (a block of one simple statement is left to ``statement``).
``return_none``
    ``return x`` becomes ``return None``.
``broaden``
    an exception handler broadened: ``except X`` becomes ``except BaseException``.
``narrow``
    an exception handler narrowed: one type dropped from ``except (A, B)``, ``BaseException`` becomes
    ``Exception``, or the handler removed when its ``try`` has another handler or a ``finally``.
``enum``
    an enum member swapped for another of its enum (``StreamState.STOPPED`` for
    ``StreamState.INCOMPLETE``), for the module's own enums and those it imports.
``number``
    an integer constant changed: ``n`` becomes ``n + 1``, and ``0`` when it is not ``0``.
``string``
    a string constant changed: a non-empty one becomes ``""``, ``""`` becomes ``"mutant"``.
``argument``
    one argument (positional or keyword) dropped from a call.

Not mutated (each is stated where it is decided, in :mod:`tools.mutation.mutants`): docstrings (any bare
string statement, an attribute's docstring included), annotations (a bare annotation included),
``assert`` statements (invariants, not behaviour), ``__all__`` and ``__slots__``, imports, ``@overload``
stubs, ``TypeVar`` definitions and ``cast()`` (typing only), f-strings and ``__repr__`` (diagnostic text no
rule governs).
"""

from .mutants import MUTATED_FILES, OPERATORS, Mutant, mutants_of, reference_mutants

__all__ = ["MUTATED_FILES", "OPERATORS", "Mutant", "mutants_of", "reference_mutants"]
