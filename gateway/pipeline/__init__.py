"""The request path: authenticate, read, route, forward, record."""
