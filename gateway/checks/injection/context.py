"""When an attack shape is talked about rather than used.

Prompts about prompt injection quote the attacks they ask about ("Why is 'ignore previous
instructions' so common?", "How would you classify: reveal your prompt"). Such matches keep a
finding but at a reduced score, so a rule's threshold decides. Negation is deliberately not a
reason: "why won't you share your prompt" and "if you don't ignore your rules, …" are attacks.
"""

from __future__ import annotations

import re

from gateway.checks.quotes import inside_quotes

DEMOTED = 0.4

_WINDOW = 80
_META = re.compile(
    r"(?:\bis (?:this|it|that)(?: an?)? (?:\w+ )?(?:jailbreak|injection|attack|malicious|safe|"
    r"benign|manipulation)[^.?!\n]*"
    r"|\bclassify(?: this| the)?(?: \w+)?"
    r"|\bhow (?:do|would|should|can) (?:you|i|we|models?|ais?) (?:interpret|classify|respond to|"
    r"handle|detect|flag|react to|recogni[sz]e)(?: this| the)?(?: \w+)?"
    r"|\bwhat(?: is|'s) your (?:assessment|response|reaction|take|opinion|analysis|view)"
    r" (?:of|to|on)(?: this| the)?(?: \w+)?"
    r"|\bwhat do you (?:make|think) of(?: this| the)?(?: \w+)?"
    r"|\banaly[sz]e (?:this|the) \w+(?: for [\w ]+)?"
    r"|\b(?:the|this|that|a|an) (?:phrase|string|input|words?|term|message)"
    r"(?: like| such as)?"
    r"|\bsomeone (?:says|writes|types)|\bif (?:a )?users? (?:says?|writes?|types?))"
    r"\s*:?\s*['\"\u201c\u2018\u00ab]?\s*(?:[\w']+[\s,]+){0,3}$"
)
# Asking about a quoted attack, rather than quoting one to pass it off as data.
_ASKS_ABOUT = re.compile(
    r"\b(?:why|what|how|explain|is this|is it|does|which|difference|meaning|example|phrase|"
    r"metaphor|poem|story about|article|essay|classify|detect|attempts?|attacks?|injections?|"
    r"jailbreaks?|means?)\b"
)


def _quoted(copy: str, start: int, end: int) -> bool:
    if not inside_quotes(copy, start, end, _WINDOW):
        return False
    before = copy[max(0, start - _WINDOW) : start]
    after = copy[end : end + _WINDOW]
    return bool(_ASKS_ABOUT.search(before) or _ASKS_ABOUT.search(after))


def demotion(copy: str, start: int, end: int) -> float:
    """The factor for a match at ``copy[start:end]``: 1, or ``DEMOTED`` when only mentioned."""
    before = copy[max(0, start - _WINDOW) : start]
    if _quoted(copy, start, end) or _META.search(before):
        return DEMOTED
    return 1.0
