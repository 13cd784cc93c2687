"""The request path's stages, one module each, in the order ``pipeline/run.py`` composes them:
authenticate, snapshot the policy, limits, input checks, route, forward, output checks
(``pipeline/output.py``), respond, record, route to review."""
