"""Learned detectors: the model interface, the shipped models, the worker pool that runs them
off the event loop, their training, and the reviewer feedback that calibrates them."""
