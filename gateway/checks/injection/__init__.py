"""Prompt-injection heuristics, as a package by concept:

- ``vocabulary``: the ``Signal`` type (a label, a weight, a pattern, and where it came from)
  and the word classes signals are built from;
- ``signals`` and ``roles``: the signals, as data;
- ``views``: the normalised copies of a text the signals run over (homoglyphs, spacing,
  leetspeak, reversal), each with its map back to the original offsets;
- ``context``: demotion of shapes that are only quoted or asked about;
- ``decoder``: encoded blobs and their decoded text, bounded by depth and bytes;
- ``matcher``: all of the above over one text;
- ``check``: the ``injection`` detector, the cheap first stage of the cascade whose second
  stage is the learned ``injection`` model (``classifier`` detector).
"""

from gateway.checks.injection.check import InjectionCheck
from gateway.checks.injection.matcher import signal_findings

__all__ = ["InjectionCheck", "signal_findings"]
