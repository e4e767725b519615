"""`resource.Quantity`: the one reader of "500m", "1.5Gi", "1e3" for the whole sandbox.

Follows k8s.io/apimachinery/pkg/api/resource: `quantity.go` (`parseQuantityString`,
`ParseQuantity`, `UnmarshalJSON`, `MilliValue`) and `suffix.go` (`interpret`). A quantity
is a signed decimal number (`1`, `1.5`, `.5`, `1.`) and one suffix: binary SI
(`Ki` `Mi` `Gi` `Ti` `Pi` `Ei`), decimal SI (`n` `u` `m` "" `k` `M` `G` `T` `P` `E`) or a
decimal exponent (`e3`, `E-3`). A non-zero amount finer than a nano-unit is rounded up,
away from zero, to one nano-unit ("if you want some resources, you should get some"), and a
binary-SI amount is capped at 2^63-1. Upstream's three errors keep upstream's text.

The sandbox reads quantities out of API JSON, so `parse_quantity` takes what
`Quantity.UnmarshalJSON` takes: a string, trimmed of surrounding white space, or a JSON
number. It raises `QuantityError`; a caller that treats a bad quantity as absent wraps it
in its own module, once.
"""

from __future__ import annotations

import decimal
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Final

SPLIT_RE_STRING: Final = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
ERR_FORMAT_WRONG: Final = f"quantities must match the regular expression '{SPLIT_RE_STRING}'"
ERR_NUMERIC: Final = "unable to parse numeric part of quantity"
ERR_SUFFIX: Final = "unable to parse quantity's suffix"

_DIGITS: Final = frozenset("0123456789")
_SUFFIX_CHARS: Final = frozenset("eEinumkKMGTP")
_NANO_EXPONENT: Final = -9
_MAX_INT64: Final = 2**63 - 1
_MAX_INT64_FACTORS: Final = 18  # digits an int64 always holds (quantity.go maxInt64Factors)


class QuantityError(ValueError):
    """A string that is no quantity; the message is upstream's error text."""


class Format(Enum):
    DECIMAL_EXPONENT = "DecimalExponent"
    BINARY_SI = "BinarySI"
    DECIMAL_SI = "DecimalSI"


# suffix.go newSuffixer: suffix -> (base, exponent)
_DECIMAL_SI: Final = {
    "n": -9,
    "u": -6,
    "m": -3,
    "": 0,
    "k": 3,
    "M": 6,
    "G": 9,
    "T": 12,
    "P": 15,
    "E": 18,
}
_BINARY_SI: Final = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}


@dataclass(frozen=True)
class _Parts:
    """What `parseQuantityString` splits a quantity into."""

    positive: bool
    value: str  # the signed number as written, without its suffix
    num: str  # integer digits, leading zeros stripped ("0" when none)
    denom: str  # fraction digits
    suffix: str


def parse_quantity(value: str | int | float) -> Decimal:
    """The amount of a quantity as API JSON carries it.

    >>> parse_quantity("250m"), parse_quantity("1Gi"), parse_quantity("1e3"), parse_quantity(2)
    (Decimal('0.250'), Decimal('1073741824'), Decimal('1E+3'), Decimal('2'))
    >>> parse_quantity("0.1n")  # finer than a nano-unit: rounded up to one
    Decimal('1E-9')
    >>> parse_quantity("1 Gi")
    Traceback (most recent call last):
    sandbox.kube.quantity.QuantityError: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'
    """  # noqa: E501
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise QuantityError(ERR_FORMAT_WRONG)
    return _parse(str(value).strip())  # UnmarshalJSON: strings.TrimSpace


def milli_value(amount: Decimal) -> int:
    """`Quantity.MilliValue()`: thousandths, rounded up (away from zero, as inf.RoundUp).

    >>> milli_value(Decimal("0.1")), milli_value(Decimal("0.0001")), milli_value(Decimal(2))
    (100, 1, 2000)
    """
    return int((amount * 1000).to_integral_value(rounding=decimal.ROUND_UP))


def whole_value(amount: Decimal) -> int:
    """`Quantity.Value()`: whole units, rounded up away from zero (bytes of memory, pods).

    >>> whole_value(Decimal("1.5")), whole_value(Decimal(1024))
    (2, 1024)
    """
    return int(amount.to_integral_value(rounding=decimal.ROUND_UP))


_DECIMAL_NAMES: Final = {-3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T", 15: "P", 18: "E"}
_BINARY_NAMES: Final = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")


def format_milli_quantity(milli: int, binary: bool = False) -> str:
    """`resource.NewMilliQuantity(milli, format).String()`.

    DecimalSI: "700m", "1", "1500m", "12", "1k". BinarySI (memory) prints whole
    bytes of at least 1Ki in the largest exact binary unit ("512Mi", "1536Ki"),
    anything else as DecimalSI.

    >>> format_milli_quantity(536870912000, binary=True), format_milli_quantity(1500)
    ('512Mi', '1500m')
    """
    if milli == 0:
        return "0"
    if binary and milli % 1000 == 0 and abs(milli // 1000) >= 1024:
        number, power = milli // 1000, 0
        while number % 1024 == 0 and power < len(_BINARY_NAMES) - 1:
            number //= 1024
            power += 1
        return f"{number}{_BINARY_NAMES[power]}"
    number, exponent = milli, -3
    while number % 1000 == 0 and exponent < 18:
        number //= 1000
        exponent += 3
    return f"{number}{_DECIMAL_NAMES[exponent]}"


# ---- quantity.go ParseQuantity ----


def _parse(text: str) -> Decimal:
    if not text:
        raise QuantityError(ERR_FORMAT_WRONG)
    if text == "0":
        return Decimal(0)
    parts = _split(text)
    base, exponent, form = _interpret(parts.suffix)
    if not _has_digits(parts.value) and not _fast_path(form, exponent, parts):
        raise QuantityError(ERR_NUMERIC)  # inf.Dec cannot read "." or "+."
    digits = len(parts.num) + len(parts.denom)
    with decimal.localcontext(_context(digits)):
        amount = Decimal(f"{parts.num}.{parts.denom}" if parts.denom else parts.num)
        amount = amount.scaleb(exponent) if base == 10 else amount * (2**exponent)
        places = amount.as_tuple().exponent
        if amount and isinstance(places, int) and places < _NANO_EXPONENT:
            amount = amount.quantize(Decimal(1).scaleb(_NANO_EXPONENT), decimal.ROUND_UP)
        if form is Format.BINARY_SI and amount > _MAX_INT64:
            amount = Decimal(_MAX_INT64)
        return amount if parts.positive or not amount else -amount


def _split(text: str) -> _Parts:
    """`parseQuantityString`: sign, digits, fraction, suffix letters, exponent digits."""
    positive, pos, end = True, 0, len(text)
    if text[0] in "+-":
        positive, pos = text[0] == "+", 1
    while pos < end and text[pos] == "0":
        pos += 1
    if pos >= end:
        return _Parts(positive, "0", "0", "", "")
    start = pos
    pos = _skip(text, pos, _DIGITS)
    if pos >= end:
        return _Parts(positive, text, text[start:], "", "")
    num = text[start:pos] or "0"
    denom = ""
    if text[pos] == ".":
        start = pos + 1
        pos = _skip(text, start, _DIGITS)
        denom = text[start:pos]
        if pos >= end:
            return _Parts(positive, text, num, denom, "")
    value, suffix_start = text[:pos], pos
    pos = _skip(text, pos, _SUFFIX_CHARS)
    if pos < end and text[pos] in "+-":
        pos += 1
    pos = _skip(text, pos, _DIGITS)
    if pos < end:
        raise QuantityError(ERR_FORMAT_WRONG)
    return _Parts(positive, value, num, denom, text[suffix_start:])


def _skip(text: str, pos: int, allowed: frozenset[str]) -> int:
    while pos < len(text) and text[pos] in allowed:
        pos += 1
    return pos


def _interpret(suffix: str) -> tuple[int, int, Format]:
    """`suffixHandler.interpret`: (base, exponent, format) of a suffix."""
    if suffix in _DECIMAL_SI:
        return 10, _DECIMAL_SI[suffix], Format.DECIMAL_SI
    if suffix in _BINARY_SI:
        return 2, _BINARY_SI[suffix], Format.BINARY_SI
    if len(suffix) > 1 and suffix[0] in "eE":
        exponent = _go_parse_int64(suffix[1:])
        if exponent is not None:
            return 10, _int32(exponent), Format.DECIMAL_EXPONENT
    raise QuantityError(ERR_SUFFIX)


def _fast_path(form: Format, exponent: int, parts: _Parts) -> bool:
    """Whether ParseQuantity takes its int64 path, which reads the digits without
    `inf.Dec.SetString` (so "Ki" or "." alone read as 0 there, and fail elsewhere)."""
    if form is Format.BINARY_SI:
        if parts.denom:
            return False
        precision = 15 - len(parts.num) - int(exponent * 3 / 10) - 1
        scale = 0
    else:
        precision = _MAX_INT64_FACTORS - len(parts.num) - len(parts.denom)
        scale = exponent
    return precision >= 0 and scale - len(parts.denom) >= _NANO_EXPONENT


def _has_digits(text: str) -> bool:
    return any(character in _DIGITS for character in text)


def _go_parse_int64(text: str) -> int | None:
    """`strconv.ParseInt(text, 10, 64)`: optional sign, ASCII digits, within int64."""
    body = text[1:] if text[:1] in ("+", "-") else text
    if not body or not all(character in _DIGITS for character in body):
        return None
    number = int(text)
    return number if -_MAX_INT64 - 1 <= number <= _MAX_INT64 else None


def _int32(number: int) -> int:
    """Go's `int32(number)`: the low 32 bits, signed."""
    return (number + 2**31) % 2**32 - 2**31


def _context(digits: int) -> decimal.Context:
    """Exact arithmetic for `digits` digits times 2^60, plus nine fraction digits."""
    return decimal.Context(prec=digits + 40, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)
