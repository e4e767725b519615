"""Chaos Toolkit controls: interlocks before anything runs, the journal after."""
