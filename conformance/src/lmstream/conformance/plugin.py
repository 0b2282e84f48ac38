"""The pytest plugin (entry point ``pytest11``); the conformance base classes land here."""
