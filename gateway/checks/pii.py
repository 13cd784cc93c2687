"""``pii``: personal data and secrets with a checkable shape.

Each entity is a pattern plus, where the format has one, a validation step (Luhn for cards,
ISO 7064 mod 97 for IBANs, the stdlib ``ipaddress`` parser, the SSA's never-issued SSN
ranges) so that look-alike numbers are not reported. Findings carry the entity name as label.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from types import MappingProxyType
from typing import Any, ClassVar

from gateway.checks.base import CheckConfigError, Finding
from gateway.checks.pii_phone import find_phones
from gateway.checks.pii_validators import (
    IBAN_LENGTHS,
    IBAN_MAX_LENGTH,
    IBAN_MIN_LENGTH,
    card_number_valid,
    iban_valid,
    ssn_valid,
)

Span = tuple[int, int]

_EMAIL = re.compile(
    r"(?<![\w.%+\-])[a-z0-9][a-z0-9._%+\-]*@"
    r"(?:[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?\.)+[a-z]{2,24}(?![\w\-]|\.\w)",
    re.IGNORECASE,
)
_CARD = re.compile(
    r"(?<![\w\-])(?:"
    r"\d{4}(?P<sep>[ \-])\d{4}(?P=sep)\d{4}(?P=sep)\d{1,4}(?:(?P=sep)\d{1,3})?"  # 4-4-4-4(-3)
    r"|\d{4}(?P<amex>[ \-])\d{6}(?P=amex)\d{4,5}"  # American Express and Diners 4-6-5 / 4-6-4
    r"|\d{12,19}"
    r")(?![\d]|[\-.]\d)"
)
_IBAN = re.compile(r"(?<![a-z0-9])[a-z]{2}\d{2}(?: ?[a-z0-9]){11,32}", re.IGNORECASE)
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9a-f]{0,4}:){2,7}(?:[0-9a-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])",
    re.IGNORECASE,
)
_SSN = re.compile(r"(?<![\d\-])(\d{3})-(\d{2})-(\d{4})(?![\d]|-\d)")
_URL_CREDENTIALS = re.compile(
    r"\b[a-z][a-z0-9+.\-]{1,15}://[^\s:/@?#]+:[^\s/@?#]+@[^\s/?#\"'<>]+", re.IGNORECASE
)
_API_KEY = re.compile(
    r"(?<![\w\-])(?:"
    r"sk-(?:proj-|svcacct-|admin-|ant-(?:api\d\d-)?)?[A-Za-z0-9_\-]{20,}"  # OpenAI, Anthropic
    r"|[sr]k_(?:live|test)_[A-Za-z0-9]{16,}"  # Stripe
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"  # AWS access key ids
    r"|gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255}"  # GitHub
    r"|xox[bpars]-[A-Za-z0-9\-]{10,}"  # Slack
    r"|AIza[0-9A-Za-z_\-]{35}"  # Google API keys
    r")(?![\w\-])"
)


def _regex(pattern: re.Pattern[str]) -> Callable[[str], list[Span]]:
    def find(text: str) -> list[Span]:
        return [match.span() for match in pattern.finditer(text)]

    return find


def find_cards(text: str) -> list[Span]:
    return [
        match.span()
        for match in _CARD.finditer(text)
        if card_number_valid(re.sub(r"\D", "", match.group()))
    ]


def _iban_end(text: str, start: int, end: int) -> int | None:
    """End of the longest valid IBAN starting at ``start`` within ``text[start:end]``.

    The pattern is greedy and may run into the next word ("GB82 WEST … 32 and"), so the
    candidate is cut back to the country's length, or tried at each group end when unknown.
    """
    positions = [index for index in range(start, end) if text[index] != " "]
    chars = "".join(text[index] for index in positions).upper()
    expected = IBAN_LENGTHS.get(chars[:2])
    lengths = (
        [expected]
        if expected is not None
        else range(min(len(chars), IBAN_MAX_LENGTH), IBAN_MIN_LENGTH - 1, -1)
    )
    for length in lengths:
        if length > len(chars):
            continue
        stop = positions[length - 1] + 1
        # The IBAN must end where a group ends, never inside a longer token.
        if stop < len(text) and text[stop].isalnum():
            continue
        if iban_valid(chars[:length]):
            return stop
    return None


def find_ibans(text: str) -> list[Span]:
    spans: list[Span] = []
    for match in _IBAN.finditer(text):
        stop = _iban_end(text, match.start(), match.end())
        if stop is not None:
            spans.append((match.start(), stop))
    return spans


def find_ips(text: str) -> list[Span]:
    spans: list[Span] = []
    for match in _IPV4.finditer(text):
        try:
            ipaddress.IPv4Address(match.group())
        except ValueError:
            continue
        spans.append(match.span())
    for match in _IPV6.finditer(text):
        candidate = match.group()
        # "::", "a::b" and clock times parse or nearly parse; real addresses carry a digit.
        if not any(char.isdigit() for char in candidate):
            continue
        try:
            ipaddress.IPv6Address(candidate)
        except ValueError:
            continue
        spans.append(match.span())
    return spans


def find_ssns(text: str) -> list[Span]:
    return [match.span() for match in _SSN.finditer(text) if ssn_valid(*match.groups())]


def _overlaps(span: Span, others: list[Span]) -> bool:
    return any(span[0] < end and start < span[1] for start, end in others)


def find_phone_numbers(text: str) -> list[Span]:
    # Card numbers, IBANs, IP addresses and SSNs are digit groups too; a validated one wins.
    taken = find_cards(text) + find_ibans(text) + find_ips(text) + find_ssns(text)
    return [span for span in find_phones(text) if not _overlaps(span, taken)]


def find_emails(text: str) -> list[Span]:
    # The "password@host" of a URL with credentials is not an address of anyone.
    urls = [match.span() for match in _URL_CREDENTIALS.finditer(text)]
    return [match.span() for match in _EMAIL.finditer(text) if not _overlaps(match.span(), urls)]


ENTITIES: MappingProxyType[str, Callable[[str], list[Span]]] = MappingProxyType(
    {
        "email": find_emails,
        "phone": find_phone_numbers,
        "credit_card": find_cards,
        "iban": find_ibans,
        "ip_address": find_ips,
        "us_ssn": find_ssns,
        "url_credentials": _regex(_URL_CREDENTIALS),
        "api_key": _regex(_API_KEY),
    }
)

# The longest text one entity can cover: a 34-character IBAN with spaces, a long URL or key.
_MAX_SPAN = 300


def _entities(params: Any) -> tuple[str, ...]:
    if isinstance(params, dict):
        unknown_keys = set(params) - {"entities"}
        if unknown_keys:
            raise CheckConfigError(f"pii: unknown parameters {sorted(unknown_keys)}")
        params = params.get("entities")
    if params is None:
        return tuple(ENTITIES)
    if not isinstance(params, list) or not all(isinstance(item, str) for item in params):
        raise CheckConfigError("pii: parameters must be a list of entities or {entities: [...]}")
    if not params:
        raise CheckConfigError(f"pii: no entities listed; known: {', '.join(ENTITIES)}")
    unknown = [name for name in params if name not in ENTITIES]
    if unknown:
        raise CheckConfigError(
            f"pii: unknown entities {', '.join(unknown)}; known: {', '.join(ENTITIES)}"
        )
    return tuple(dict.fromkeys(params))


class PiiCheck:
    """Emails, phone numbers, cards, IBANs, IP addresses, US SSNs, URL passwords and API keys."""

    name: ClassVar[str] = "pii"

    def __init__(self, params: Any) -> None:
        self._entities = _entities(params)

    @property
    def max_span(self) -> int:
        return _MAX_SPAN

    def find(self, text: str) -> list[Finding]:
        findings = [
            Finding(start, end, entity)
            for entity in self._entities
            for start, end in ENTITIES[entity](text)
        ]
        findings.sort(key=lambda finding: (finding.start, finding.end))
        return findings
