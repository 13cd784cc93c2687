"""Telephone numbers: international and national layouts, told apart from other numbers.

A bare run of digits is as often an amount, a date, an address or an order number as a phone
number, so shapes are graded. Strong shapes (an international prefix, a bracketed area code, an
extension, the North American 3-3-4 layout, three or more groups totalling nine or more digits)
stand on their own; weak ones (two groups, an unbroken run, thousands-style 1-3 + 3 + 3 groups)
count only near a word that says a phone number is meant ("call", "mobile", "fax", …).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_CANDIDATE = re.compile(
    r"""
    (?<![\w+@/.\-=])(?<!\d,)(?<!\d[ .\-])
    (?P<prefix>\+\d{1,3}[ .\-]?)?
    (?P<area>\(\+?\d{1,4}\)[ .\-]?)?
    (?P<body>\d{1,12}(?:[ .\-]\d{1,8}){0,5})
    (?:[ ]?(?:x|ext\.?)[ ]?(?P<ext>\d{1,6}))?
    (?![\w:]|[ .\-]?\d|,\d)
    """,
    re.VERBOSE | re.IGNORECASE,
)

_DATE = re.compile(
    r"(?:19|20)\d\d([\-./ ])(?:0?[1-9]|1[0-2])\1(?:0?[1-9]|[12]\d|3[01])(?!\d)"
    r"|(?<!\d)(?:0?[1-9]|[12]\d|3[01])([\-./])(?:0?[1-9]|[12]\d|3[01])\2(?:19|20)?\d\d(?!\d)"
)
_YEARS = re.compile(r"(?:(?:19|20)\d\d[ .\-]?)+")
_CURRENCY_BEFORE = re.compile(r"[$€£¥₹]\s?$|\b(?:usd|eur|gbp|chf|jpy)\s?$", re.IGNORECASE)
_CURRENCY_AFTER = re.compile(r"^\s?(?:[$€£¥₹%]|(?:usd|eur|gbp|chf|jpy|dollars?|euros?)\b)", re.I)

_CONTEXT = re.compile(
    r"\b(?:phone|tel|telephone|mobile|cell|cellphone|fax|desk|office|home|work|call|calls|"
    r"called|calling|contact|number|numbers|no|nr|whatsapp|sms|text|texts|message|messages|"
    r"reach|dial|ring|answer|answering|landline|hotline|helpline|pager|voicemail)\b",
    re.IGNORECASE,
)
# Words that say a number is something else, and street words that follow a house number.
_OTHER_BEFORE = re.compile(
    r"\b(?:licen[cs]e|passport|account|acct|order|invoice|iban|card|ssn|social security|"
    r"id|serial|tracking|zip|postal|postcode|isbn|policy|reference|ref)\b[^\n]*$",
    re.IGNORECASE,
)
_STREET_AFTER = re.compile(
    r"^[ ,]*(?:[A-Z][\w'\-]*[ ,]+){0,3}(?i:st|street|rd|road|ave|avenue|blvd|boulevard|lane|"
    r"ln|way|drive|dr|court|ct|place|pl|square|sq|apt|suite|box)\b"
)
# The tail of an IBAN whose checksum failed: "GB83 WEST 1234 5698 7654 32".
_IBAN_HEAD = re.compile(r"\b[a-z]{2}\d{2}(?: ?[a-z0-9]{4})* ?$", re.IGNORECASE)
_CONTEXT_BEFORE = 40
_CONTEXT_AFTER = 15

_MIN_DIGITS = 7
_MAX_DIGITS = 15


@dataclass(frozen=True, slots=True)
class _Shape:
    digits: int
    groups: tuple[int, ...]
    separators: frozenset[str]
    international: bool
    bracketed: bool
    extension: bool


def _shape(match: re.Match[str]) -> _Shape:
    body = match.group("body")
    groups = tuple(len(group) for group in re.split(r"[ .\-]", body))
    prefix, area = match.group("prefix") or "", match.group("area") or ""
    digits = sum(char.isdigit() for char in prefix + area + body)
    return _Shape(
        digits=digits,
        groups=groups,
        separators=frozenset(re.findall(r"[ .\-]", body)),
        international=bool(prefix) or (body.startswith("00") and not area),
        bracketed=bool(area),
        extension=match.group("ext") is not None,
    )


def _strong(shape: _Shape) -> bool:
    if shape.international or shape.bracketed or shape.extension:
        return True
    if len(shape.separators) > 1:
        return False
    if shape.groups == (3, 3, 4):
        return True
    thousands = len(shape.groups) >= 3 and all(size == 3 for size in shape.groups[1:])
    return len(shape.groups) >= 3 and shape.digits >= 9 and not thousands


def _plausible(shape: _Shape, text: str) -> bool:
    """Rules out layouts that no numbering plan uses but other numbers do."""
    if not _MIN_DIGITS <= shape.digits <= _MAX_DIGITS:
        return False
    if len(shape.separators) > 1 and not (shape.international or shape.bracketed):
        return False
    if "." in shape.separators and min(shape.groups) < 2:
        return False  # version numbers, section numbers
    if shape.groups == (3, 2, 4) and shape.separators == {"-"}:
        return False  # the US social security number layout
    return _DATE.search(text) is None and _YEARS.fullmatch(text) is None


def _has_context(text: str, start: int, end: int) -> bool:
    before = text[max(0, start - _CONTEXT_BEFORE) : start]
    after = text[end : end + _CONTEXT_AFTER].split("\n", 1)[0]
    return bool(_CONTEXT.search(before) or _CONTEXT.search(after))


def _is_other_number(text: str, start: int, end: int) -> bool:
    """A licence, account, order or bank number, or a house number followed by its street."""
    before = text[max(0, start - _CONTEXT_BEFORE) : start]
    after = text[end : end + _CONTEXT_BEFORE].split("\n", 1)[0]
    found = _OTHER_BEFORE.search(before) or _STREET_AFTER.search(after)
    return bool(found or _IBAN_HEAD.search(before))


def _is_amount(text: str, start: int, end: int) -> bool:
    before = text[max(0, start - 5) : start]
    return bool(_CURRENCY_BEFORE.search(before) or _CURRENCY_AFTER.search(text[end : end + 9]))


def find_phones(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for match in _CANDIDATE.finditer(text):
        start, end = match.span()
        shape = _shape(match)
        if not _plausible(shape, match.group()) or _is_amount(text, start, end):
            continue
        if _is_other_number(text, start, end):
            continue
        if _strong(shape) or _has_context(text, start, end):
            spans.append((start, end))
    return spans
