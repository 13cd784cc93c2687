"""Deployment-context policies: the file format, compilation, the live store, evaluation."""
