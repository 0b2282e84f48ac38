"""The project's own tooling (not a shipped package): see :mod:`tools.mutation`."""
