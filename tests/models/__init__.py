"""Models an operator would plug into a ``classifier`` rule (``tests.models.<module>:<name>``):
small, deterministic, and each showing one behaviour the gateway must handle."""
