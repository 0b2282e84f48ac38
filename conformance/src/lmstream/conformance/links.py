"""Where a report's links to the spec point.

Every failure links the requirement's section of the rendered spec: ``<base>/spec.html#es-3``. The base is
:data:`DOCS_BASE` (the published docs) unless the environment variable ``LMSTREAM_DOCS_BASE`` says
otherwise, e.g. ``LMSTREAM_DOCS_BASE=file:///path/to/lmstream/docs/_build/html`` after ``make docs`` to
link a local build. The variable is read each time a link is made, so it may be set after import.
"""

from __future__ import annotations

import os
from typing import Final

from lmstream.spec import get_requirement

__all__ = ["DOCS_BASE", "DOCS_BASE_ENV", "docs_base", "spec_url"]

DOCS_BASE: Final = "https://lmstream.readthedocs.io/en/latest"
"""The default base URL of the rendered docs (the directory that holds ``spec.html``)."""

DOCS_BASE_ENV: Final = "LMSTREAM_DOCS_BASE"
"""The environment variable that overrides :data:`DOCS_BASE`."""


def docs_base() -> str:
    """The base URL in force: ``$LMSTREAM_DOCS_BASE`` when set and not blank, else :data:`DOCS_BASE`."""
    base = os.environ.get(DOCS_BASE_ENV, "").strip() or DOCS_BASE
    return base.rstrip("/")


def spec_url(requirement_id: str) -> str:
    """The URL of a requirement's section of the spec, e.g. ``.../spec.html#es-3``.

    :raises lmstream.spec.UnknownRequirementError: for an ID that is not in the registry.
    """
    return f"{docs_base()}/spec.html#{get_requirement(requirement_id).anchor}"
