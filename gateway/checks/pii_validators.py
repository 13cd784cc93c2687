"""Checksums and number-plan tables that turn digit-shaped matches into likely identifiers."""

from __future__ import annotations

from types import MappingProxyType

# IBAN lengths from the SWIFT IBAN registry; a wrong length is never a valid IBAN.
IBAN_LENGTHS = MappingProxyType(
    {
        "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
        "BH": 22, "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24,
        "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
        "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27,
        "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
        "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
        "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27,
        "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28,
        "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
        "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
        "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
    }
)  # fmt: skip

IBAN_MIN_LENGTH = 15
IBAN_MAX_LENGTH = 34

# Issuer prefixes of the card networks, so that arbitrary Luhn-valid digit runs (one in ten of
# all numbers, including millisecond timestamps) are not taken for cards.
_CARD_PREFIXES = (
    "4",  # Visa
    "51", "52", "53", "54", "55",  # Mastercard
    "34", "37",  # American Express
    "30", "36", "38", "39",  # Diners Club
    "35", "1800", "2131",  # JCB
    "6",  # Discover, UnionPay, Maestro, RuPay
    "50", "56", "57", "58",  # Maestro
)  # fmt: skip
# Mastercard's 2-series, 2221-2720.
_MASTERCARD_2_SERIES = (2221, 2720)
# Maestro is the one network that issues 12-digit numbers.
_MAESTRO_PREFIXES = ("50", "56", "57", "58", "6")


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def card_number_valid(digits: str) -> bool:
    """A plausible payment card number: length, issuer prefix and Luhn checksum."""
    if len(digits) == 12:
        known = digits.startswith(_MAESTRO_PREFIXES)
    elif 13 <= len(digits) <= 19:
        series = _MASTERCARD_2_SERIES[0] <= int(digits[:4]) <= _MASTERCARD_2_SERIES[1]
        known = series or digits.startswith(_CARD_PREFIXES)
    else:
        return False
    return known and luhn_valid(digits)


def iban_checksum_valid(iban: str) -> bool:
    """ISO 7064 mod 97-10 over the rearranged IBAN (letters as 10-35), as ISO 13616 defines."""
    rearranged = iban[4:] + iban[:4]
    if not rearranged.isalnum() or not rearranged.isascii():
        return False
    number = "".join(str(int(char, 36)) for char in rearranged)
    return int(number) % 97 == 1


def iban_valid(iban: str) -> bool:
    """Upper-case, space-free ``iban``: shape, the country's length where known, checksum."""
    country, check = iban[:2], iban[2:4]
    if not (country.isalpha() and check.isdigit()):
        return False
    expected = IBAN_LENGTHS.get(country)
    if expected is not None and len(iban) != expected:
        return False
    if not IBAN_MIN_LENGTH <= len(iban) <= IBAN_MAX_LENGTH:
        return False
    return iban_checksum_valid(iban)


def ssn_valid(area: str, group: str, serial: str) -> bool:
    """The SSA never issues area 000, 666 or 900-999, group 00 or serial 0000."""
    if area in {"000", "666"} or area.startswith("9"):
        return False
    return group != "00" and serial != "0000"
