"""Supervising LLM output as it streams: incremental tokens, windows, release, sessions."""
