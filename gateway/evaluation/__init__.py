"""Measuring detectors and policies on labelled data: both sides, always together.

Tools for operators and for the project's own figures (``gateway policy eval``,
``docs/efficacy.md``); nothing on the request path imports them.
"""
