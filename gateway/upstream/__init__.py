"""Talking to backends: routing aliases, one shared HTTP client, SSE framing."""
