"""Words, for the scope classifiers: how many a text has, and the stems the lexical one compares.

Both classifiers (``gateway.policy.scope``, ``gateway.policy.semantic``) read these, so they live
here, below both.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
_STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself
    yourselves please thanks thank hi hello hey want need like know tell get make help one also
    may might must shall let us im ive id dont cant wont""".split()  # noqa: SIM905 (a word list reads better as text)
)
_SUFFIXES = ("ations", "ation", "ings", "ing", "ies", "ied", "ers", "er", "es", "ed", "ly", "s")


def stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")


def word_count(text: str) -> int:
    """Words in any script: runs of letters, and for Chinese, Japanese and Korean (written
    without spaces) one word for every two characters."""
    return max(len(_WORD.findall(text)), len(_CJK.findall(text)) // 2)


def content_stems(text: str) -> list[str]:
    words = (w.casefold() for w in _WORD.findall(text))
    return [stem(w) for w in words if w not in _STOPWORDS and len(w) > 1]
