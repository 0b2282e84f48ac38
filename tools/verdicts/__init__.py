"""Verdicts before and after a refactor of the conformance suite: every known target's outcome per check.

``python -m tools.verdicts --write`` runs every target of :mod:`.targets` (the broken targets of the
suite's own tests, the example engines, the reference manager and round stream, kani's manager, the real
SDK engines) through its kind's checks and writes ``baseline.json``; ``python -m tools.verdicts`` runs them
again and fails when any check's outcome differs from the baseline (messages may differ: those that do are
listed, so that a deliberate change of wording can be reviewed).
"""
