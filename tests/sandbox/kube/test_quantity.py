"""`sandbox.kube.quantity` reads quantities as apimachinery's resource.Quantity does.

Cases marked "upstream" are from k8s.io/apimachinery/pkg/api/resource
quantity_test.go (TestQuantityParse, TestQuantityParseZero, the invalid list of
TestQuantityParse); the rest follow from quantity.go's scanner.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from sandbox.kube.quantity import (
    ERR_FORMAT_WRONG,
    ERR_NUMERIC,
    ERR_SUFFIX,
    QuantityError,
    format_milli_quantity,
    milli_value,
    parse_quantity,
    whole_value,
)


@pytest.mark.parametrize(
    ("text", "amount"),
    [
        pytest.param("0", Decimal(0), id="zero"),
        pytest.param("0n", Decimal(0), id="upstream-zero-nano"),
        pytest.param("0Ki", Decimal(0), id="upstream-zero-kibi"),
        pytest.param("-0", Decimal(0), id="negative-zero"),
        pytest.param("1", Decimal(1), id="whole"),
        pytest.param("500m", Decimal("0.5"), id="milli"),
        pytest.param("5n", Decimal("5e-9"), id="nano"),
        pytest.param("5u", Decimal("5e-6"), id="micro"),
        pytest.param("1k", Decimal(1000), id="kilo"),
        pytest.param("1M", Decimal(10**6), id="mega"),
        pytest.param("1G", Decimal(10**9), id="giga"),
        pytest.param("1T", Decimal(10**12), id="tera"),
        pytest.param("1P", Decimal(10**15), id="peta"),
        pytest.param("1E", Decimal(10**18), id="exa-is-a-suffix-not-an-exponent"),
        pytest.param("1Ki", Decimal(2**10), id="kibi"),
        pytest.param("8Mi", Decimal(8 * 2**20), id="mebi"),
        pytest.param("1.5Gi", Decimal(3 * 2**29), id="fractional-gibi"),
        pytest.param("1Ti", Decimal(2**40), id="tebi"),
        pytest.param("1Pi", Decimal(2**50), id="pebi"),
        pytest.param("1Ei", Decimal(2**60), id="exbi"),
        pytest.param("1e3", Decimal(1000), id="upstream-exponent"),
        pytest.param("1E-3", Decimal("0.001"), id="upstream-negative-exponent"),
        pytest.param("1e+3", Decimal(1000), id="signed-exponent"),
        pytest.param(".5", Decimal("0.5"), id="upstream-no-integer-part"),
        pytest.param("1.", Decimal(1), id="upstream-no-fraction-digits"),
        pytest.param("-1.5Ki", Decimal(-1536), id="negative"),
        pytest.param("+2", Decimal(2), id="plus-sign"),
        pytest.param("0.1m", Decimal("0.0001"), id="upstream-sub-milli-kept"),
        pytest.param("0.1n", Decimal("1e-9"), id="upstream-below-nano-rounds-up"),
        pytest.param("-0.1n", Decimal("-1e-9"), id="negative-below-nano-rounds-away-from-zero"),
        pytest.param("1.0000000001", Decimal("1.000000001"), id="ten-places-round-up"),
        pytest.param("9223372036854775807Ki", Decimal(2**63 - 1), id="binary-capped-at-int64"),
        pytest.param("Ki", Decimal(0), id="suffix-alone-is-zero-on-the-int64-path"),
        pytest.param(".Ti", Decimal(0), id="dot-alone-is-zero-on-the-int64-path"),
        pytest.param(" 100m ", Decimal("0.1"), id="json-string-trimmed"),
        pytest.param(2, Decimal(2), id="json-integer"),
        pytest.param(0.5, Decimal("0.5"), id="json-float"),
        pytest.param(1e-05, Decimal("0.00001"), id="json-float-exponent"),
    ],
)
def test_a_quantity_reads_as_upstream_reads_it(text: str | int | float, amount: Decimal) -> None:
    assert parse_quantity(text) == amount


@pytest.mark.parametrize(
    ("text", "error"),
    [
        pytest.param("", ERR_FORMAT_WRONG, id="empty"),
        pytest.param("1.1.M", ERR_FORMAT_WRONG, id="upstream-two-points"),
        pytest.param("1+1.0M", ERR_FORMAT_WRONG, id="upstream-sign-inside"),
        pytest.param("0.1am", ERR_FORMAT_WRONG, id="upstream-letter-outside-the-alphabet"),
        pytest.param("aoeu", ERR_FORMAT_WRONG, id="upstream-word"),
        pytest.param("1 Gi", ERR_FORMAT_WRONG, id="space-inside"),
        pytest.param("1e5e", ERR_FORMAT_WRONG, id="letter-after-exponent-digits"),
        pytest.param("0.1mi", ERR_SUFFIX, id="upstream-milli-i"),
        pytest.param(".5i", ERR_SUFFIX, id="upstream-i-alone"),
        pytest.param("-3.01i", ERR_SUFFIX, id="upstream-negative-i"),
        pytest.param("-3.01e-", ERR_SUFFIX, id="upstream-exponent-without-digits"),
        pytest.param("1e", ERR_SUFFIX, id="e-alone"),
        pytest.param("1ki", ERR_SUFFIX, id="lower-case-binary"),
        pytest.param("1K", ERR_SUFFIX, id="upper-case-kilo"),
        pytest.param("1e9223372036854775808", ERR_SUFFIX, id="exponent-beyond-int64"),
        pytest.param(".e-10", ERR_NUMERIC, id="no-digits-on-the-decimal-path"),
        pytest.param(".Pi", ERR_NUMERIC, id="no-digits-on-the-decimal-path-binary"),
        pytest.param(True, ERR_FORMAT_WRONG, id="json-bool"),
    ],
)
def test_a_malformed_quantity_raises_upstreams_error(text: str, error: str) -> None:
    with pytest.raises(QuantityError) as raised:
        parse_quantity(text)
    assert str(raised.value) == error


def test_the_format_error_names_upstreams_expression() -> None:
    assert ERR_FORMAT_WRONG == (
        "quantities must match the regular expression "
        "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )


@pytest.mark.parametrize(
    ("amount", "milli", "whole"),
    [
        pytest.param(Decimal("0.1"), 100, 1, id="tenth"),
        pytest.param(Decimal("0.0001"), 1, 1, id="below-a-milli-rounds-up"),
        pytest.param(Decimal("1.5"), 1500, 2, id="half-rounds-up"),
        pytest.param(Decimal(1024), 1_024_000, 1024, id="exact"),
        pytest.param(Decimal("-1.5"), -1500, -2, id="negative-rounds-away-from-zero"),
    ],
)
def test_milli_and_whole_values_round_away_from_zero(
    amount: Decimal, milli: int, whole: int
) -> None:
    assert (milli_value(amount), whole_value(amount)) == (milli, whole)


@pytest.mark.parametrize(
    ("milli", "binary", "expected"),
    [
        pytest.param(700, False, "700m", id="cpu-milli"),
        pytest.param(1000, False, "1", id="cpu-whole"),
        pytest.param(1500, False, "1500m", id="cpu-fraction"),
        pytest.param(1_000_000, False, "1k", id="cpu-kilo"),
        pytest.param(536_870_912_000, True, "512Mi", id="memory-mebibytes"),
        pytest.param(1_572_864_000, True, "1536Ki", id="memory-kibibytes"),
        pytest.param(123_456_789_000, True, "123456789", id="memory-odd-bytes"),
        pytest.param(1_000_500, True, "1000500m", id="memory-fraction-falls-back"),
        pytest.param(0, True, "0", id="zero"),
    ],
)
def test_format_milli_quantity(milli: int, binary: bool, expected: str) -> None:
    assert format_milli_quantity(milli, binary) == expected
