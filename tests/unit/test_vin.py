"""ISO 3779 VIN check digits."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.errors import InvalidVinError, ReasonCode
from schemas.vin import ALPHABET, check_digit, is_valid_vin, random_vin, transliterate, validate_vin

KNOWN_VALID = ["1M8GDM9AXKP042788", "11111111111111111", "1HGCM82633A004352"]


@pytest.mark.parametrize("vin", KNOWN_VALID)
def test_known_vins_are_valid(vin: str) -> None:
    assert is_valid_vin(vin)
    assert validate_vin(vin) == vin


def test_check_digit_ten_is_written_x() -> None:
    assert check_digit("1M8GDM9A0KP042788") == "X"


@pytest.mark.parametrize(
    "vin",
    [
        "1M8GDM9A1KP042788",  # wrong check digit
        "1M8GDM9AXKP04278",  # 16 characters
        "1M8GDM9AXKP0427888",  # 18 characters
        "IM8GDM9AXKP042788",  # I is never used
        "1M8GDM9AXKP04278O",  # O is never used
        "1m8gdm9axkp042788",  # lower case
    ],
)
def test_malformed_vins_are_invalid(vin: str) -> None:
    assert not is_valid_vin(vin)
    with pytest.raises(InvalidVinError) as e:
        validate_vin(vin)
    assert e.value.reason is ReasonCode.INVALID_VIN


def test_non_strings_are_invalid() -> None:
    assert not is_valid_vin(None)
    assert not is_valid_vin(12345678901234567)
    with pytest.raises(InvalidVinError):
        validate_vin(b"11111111111111111")


@given(st.integers(min_value=0, max_value=2**32))
def test_random_vins_are_valid_and_reproducible(seed: int) -> None:
    vin = random_vin(random.Random(seed))
    assert is_valid_vin(vin)
    assert vin == random_vin(random.Random(seed))
    assert not set(vin) & set("IOQ")


@given(
    seed=st.integers(min_value=0, max_value=2**32),
    position=st.integers(min_value=0, max_value=16).filter(lambda p: p != 8),
    replacement=st.sampled_from(ALPHABET),
)
def test_changing_one_character_breaks_validity_unless_it_transliterates_alike(
    seed: int, position: int, replacement: str
) -> None:
    # The weights are non-zero modulo 11 (prime) and two values differ by less than 11,
    # so the sum modulo 11 changes exactly when the character's value changes.
    vin = random_vin(random.Random(seed))
    changed = vin[:position] + replacement + vin[position + 1 :]
    same_value = transliterate(replacement) == transliterate(vin[position])
    assert is_valid_vin(changed) == same_value


@given(seed=st.integers(min_value=0, max_value=2**32), replacement=st.sampled_from(ALPHABET))
def test_any_other_check_digit_is_invalid(seed: int, replacement: str) -> None:
    vin = random_vin(random.Random(seed))
    changed = vin[:8] + replacement + vin[9:]
    assert is_valid_vin(changed) == (replacement == vin[8])
