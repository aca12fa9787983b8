"""PII signal and redaction: emails, phones, payment cards, IP addresses, IBANs and national ids.

Each detector is a regular expression for candidates plus a validator, so a number is only called a card
when it passes the Luhn check, an IBAN only when its mod-97 check holds, an IPv4 only with octets 0-255, an
IPv6 only when :mod:`ipaddress` parses it, and a US SSN only outside the ranges never issued. Overlapping
candidates are resolved by a fixed priority (the more specific, validated type wins), then replaced by
placeholders such as ``[EMAIL]``. Placeholders hold no digits and no ``@``, so redaction is idempotent.

Digits are matched as ASCII ``[0-9]`` on purpose: other scripts' digits are not phone or card numbers here,
and Python's ``int`` would otherwise accept them silently.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from dynacure.signals.base import Resources, Signal, register_signal

PII_TYPES = ("email", "phone", "credit_card", "ipv4", "ipv6", "iban", "us_ssn", "uk_nino")


def placeholder(kind: str) -> str:
    return f"[{kind.upper()}]"


# --- validators -----------------------------------------------------------------------------------

def luhn_ok(digits: str) -> bool:
    """The Luhn checksum of a digit string (payment cards, some national ids)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


# ISO 13616 lengths per country (the most used ones; an unknown country code falls back to 15-34).
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
    "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24,
    "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21,
    "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28,
    "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27,
    "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24,
    "RS": 22, "SA": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TN": 24, "TR": 26, "UA": 29, "VG": 24,
    "XK": 20,
}


def iban_ok(compact: str) -> bool:
    """Mod-97 check of an IBAN without spaces (ISO 7064), plus the country's length when known."""
    s = compact.upper()
    if not re.fullmatch(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}", s):
        return False
    want = IBAN_LENGTHS.get(s[:2])
    if want is not None and len(s) != want:
        return False
    moved = s[4:] + s[:4]
    num = "".join(str(int(ch, 36)) for ch in moved)
    return int(num) % 97 == 1


def ssn_ok(area: str, group: str, serial: str) -> bool:
    """US SSN ranges never issued: area 000, 666, 900-999; group 00; serial 0000; and known ad numbers."""
    a, g, s = int(area), int(group), int(serial)
    if a == 0 or a == 666 or a >= 900 or g == 0 or s == 0:
        return False
    return f"{area}{group}{serial}" not in {"078051120", "219099999", "123456789"}


def ipv4_ok(text: str) -> bool:
    parts = text.split(".")
    # a leading zero ("010") is refused: ambiguous (octal in some parsers) and mostly version strings.
    return len(parts) == 4 and all(p.isdigit() and int(p) <= 255 and (p == "0" or p[0] != "0") for p in parts)


def ipv6_ok(text: str) -> bool:
    if text.count(":") < 2 or not re.search(r"[0-9]", text):
        # All-letter candidates ("be:ad::") are words far more often than addresses.
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def card_ok(text: str) -> bool:
    digits = re.sub(r"[ -]", "", text)
    return 13 <= len(digits) <= 19 and luhn_ok(digits) and len(set(digits)) > 1


def nanp_ok(text: str) -> bool:
    """North American number: 10 digits (after an optional leading 1), area and exchange not starting 0/1."""
    digits = re.sub(r"[^0-9]", "", text)
    if len(digits) == 11 and digits[0] == "1":
        digits = digits[1:]
    return len(digits) == 10 and digits[0] >= "2" and digits[3] >= "2"


def intl_phone_ok(text: str) -> bool:
    digits = re.sub(r"[^0-9]", "", text)
    return 8 <= len(digits) <= 15  # E.164 allows at most 15 digits including the country code


# --- detectors ------------------------------------------------------------------------------------

_ND = r"(?<![0-9])"  # not preceded by a digit
_NA = r"(?![0-9])"  # not followed by a digit


@dataclass(frozen=True)
class Detector:
    kind: str
    pattern: re.Pattern[str]
    valid: Callable[[re.Match[str]], bool]


def _group_ok(fn: Callable[..., bool]) -> Callable[[re.Match[str]], bool]:
    return lambda m: fn(*m.groups())


# Order = priority when spans overlap: validated, specific types first; phone (the loosest) last.
DETECTORS: tuple[Detector, ...] = (
    Detector("email", re.compile(
        r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,62}[A-Za-z0-9_%+-])?"
        r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![A-Za-z0-9-])"),
        lambda m: True),
    Detector("iban", re.compile(
        r"(?<![A-Za-z0-9])[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])"),
        lambda m: iban_ok(m.group(0).replace(" ", ""))),
    Detector("credit_card", re.compile(
        _ND + r"(?:[0-9]{13,19}"
        r"|[0-9]{4}(?:([ -])[0-9]{4}){2}\1[0-9]{1,7}"  # 4-4-4-4 (and 4-4-4-5..7): one separator kind
        r"|[0-9]{4}([ -])[0-9]{6}\2[0-9]{4,5}"  # Amex 4-6-5, Diners 4-6-4
        r"|[0-9]{4}([ -])[0-9]{4}\3[0-9]{4}\3[0-9]{4}\3[0-9]{1,3})" + _NA),  # 19 digits in 5 groups
        lambda m: card_ok(m.group(0))),
    Detector("ipv6", re.compile(
        r"(?<![0-9A-Za-z:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:[0-9]{1,3}\.){3}[0-9]{1,3})?"
        r"(?![0-9A-Fa-f:]|\.[0-9])"),
        lambda m: ipv6_ok(m.group(0))),
    Detector("ipv4", re.compile(r"(?<![0-9.])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?![0-9]|\.[0-9])"),
             lambda m: ipv4_ok(m.group(0))),
    Detector("us_ssn", re.compile(_ND + r"([0-9]{3})([- ])([0-9]{2})\2([0-9]{4})" + _NA),
             lambda m: ssn_ok(m.group(1), m.group(3), m.group(4))),
    Detector("uk_nino", re.compile(
        r"(?<![A-Za-z0-9])(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]"
        r"(?: ?[0-9]{2}){3} ?[A-D](?![A-Za-z0-9])"),
        lambda m: True),
    Detector("phone", re.compile(
        # US / NANP: (555) 234-5678, 555-234-5678, 555.234.5678, +1 555 234 5678, 1-555-234-5678
        r"(?<![0-9+])(?:\+?1[ .-]?)?(?:\([0-9]{3}\) ?|[0-9]{3}[ .-])[0-9]{3}[ .-][0-9]{4}" + _NA),
        lambda m: nanp_ok(m.group(0))),
    Detector("phone", re.compile(
        # international: +CC then 2-6 groups of digits, optional (0) trunk, separators space . - or none
        r"(?<![0-9A-Za-z+])\+[1-9][0-9]{0,2}(?:[ .-]?\(0\))?(?:[ .-]?\(?[0-9]{1,4}+\)?){2,6}+" + _NA),
        lambda m: intl_phone_ok(m.group(0))),
)


_HAS_DIGIT_OR_AT = re.compile(r"[0-9@]")


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    kind: str


def find_pii(text: str, types: Iterable[str] | None = None) -> list[Span]:
    """Validated, non-overlapping PII spans in ``text``, sorted by start."""
    wanted = _check_types(types)
    taken: list[Span] = []
    if not _HAS_DIGIT_OR_AT.search(text):  # every PII type holds a digit or an @: skip most prose fast
        return taken
    for det in DETECTORS:
        if det.kind not in wanted:
            continue
        for m in det.pattern.finditer(text):
            if not det.valid(m):
                continue
            s, e = m.span()
            if any(s < t.end and t.start < e for t in taken):
                continue
            taken.append(Span(s, e, det.kind))
    return sorted(taken, key=lambda sp: sp.start)


def _check_types(types: Iterable[str] | None) -> frozenset[str]:
    if types is None:
        return frozenset(PII_TYPES)
    chosen = frozenset(types)
    unknown = chosen - set(PII_TYPES)
    if unknown:
        raise ValueError(f"unknown PII type(s) {sorted(unknown)}; known: {', '.join(PII_TYPES)}")
    return chosen


def redact(text: str, types: Iterable[str] | None = None) -> tuple[str, dict[str, int]]:
    """Replace each PII span by its placeholder (``[EMAIL]``, ``[CREDIT_CARD]``, ...).

    Returns the redacted text and the number of spans replaced per type (every known type present, 0 if none).
    Passes repeat until nothing is found: a span's context (the character before a phone number, say) can
    change once its neighbour is replaced, and the result must be a fixed point so that redacting twice
    changes nothing. It terminates because every span holds a digit or an ``@`` and placeholders hold none.
    """
    wanted = _check_types(types)
    counts = dict.fromkeys(PII_TYPES, 0)
    while True:
        spans = find_pii(text, wanted)
        if not spans:
            return text, counts
        parts: list[str] = []
        pos = 0
        for sp in spans:
            parts.append(text[pos:sp.start])
            parts.append(placeholder(sp.kind))
            counts[sp.kind] += 1
            pos = sp.end
        parts.append(text[pos:])
        text = "".join(parts)


@register_signal("pii")
class PIISignal(Signal):
    """Counts of PII spans per type and ``any`` (1 when the document holds at least one)."""

    name = "pii"
    columns = (*PII_TYPES, "any")
    resources = Resources(cpus=1.0, batch_size=1024)

    def __init__(self, types: Iterable[str] | None = None) -> None:
        self.types = tuple(sorted(_check_types(types)))

    def params(self) -> dict[str, object]:
        return {"types": list(self.types)}

    def score(self, texts: list[str]) -> dict[str, np.ndarray]:
        out = {k: np.zeros(len(texts), dtype=np.int32) for k in PII_TYPES}
        for i, text in enumerate(texts):
            # Counted through redact() so the columns always agree with what redaction removes.
            _, counts = redact(text, self.types)
            for kind, c in counts.items():
                out[kind][i] = c
        total = sum(out.values())
        out["any"] = (np.asarray(total) > 0).astype(np.int8)
        return out
