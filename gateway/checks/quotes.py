"""Whether a match sits inside quotation marks: text a writer cites rather than says."""

from __future__ import annotations

import re

_OPEN = re.compile(
    r"(?:^|[\s(:\[,])['\"\u201c\u2018\u00ab][^'\"\u201c\u201d\u2018\u2019\u00ab\u00bb\n]*$"
)
# A closing mark followed by a letter is an apostrophe ("don't"), not the end of a quotation.
_CLOSE = re.compile(
    r"^[^'\"\u201c\u201d\u2018\u2019\u00ab\u00bb\n]*['\"\u201d\u2019\u00bb](?![a-z])"
)


def inside_quotes(text: str, start: int, end: int, window: int = 80) -> bool:
    """Whether ``text[start:end]`` is enclosed by quotation marks on its own line."""
    before = text[max(0, start - window) : start]
    after = text[end : end + window]
    return bool(_OPEN.search(before) and _CLOSE.search(after))
