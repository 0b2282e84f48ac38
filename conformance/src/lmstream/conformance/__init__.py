"""lmstream.conformance: checks that prove an engine or a stream manager keeps the lmstream contract."""
