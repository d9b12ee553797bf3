"""ISO 3779 vehicle identification numbers and their check digit.

The check digit (position 9) uses the North-American scheme (49 CFR 565) that ISO 3779
VINs on cars sold in China also carry: letters are transliterated to digits, each position
weighted, the sum taken modulo 11, and 10 written as "X".
"""

from __future__ import annotations

import random

from schemas.errors import InvalidVinError

# I, O and Q are never used: they read as 1 and 0.
_VALUES: dict[str, int] = (
    {str(d): d for d in range(10)}
    | dict(zip("ABCDEFGH", range(1, 9), strict=True))
    | dict(zip("JKLMN", range(1, 6), strict=True))
    | {"P": 7, "R": 9}
    | dict(zip("STUVWXYZ", range(2, 10), strict=True))
)
_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
ALPHABET = "".join(sorted(_VALUES))
# Model-year codes (position 10) skip U, Z and 0 as well as I, O, Q.
_YEAR_CODES = "ABCDEFGHJKLMNPRSTVWXY123456789"
# World manufacturer identifiers of makers with plants in China (the simulator's fleet).
CHINA_WMIS = ("LRW", "LSV", "LFV", "LGX", "LVG", "LHG", "LSJ", "LBV")


def transliterate(char: str) -> int:
    """The digit a VIN character counts as; KeyError for characters VINs never use."""
    return _VALUES[char]


def check_digit(vin: str) -> str:
    """The check digit a 17-character VIN must carry at position 9 (index 8)."""
    if len(vin) != 17:
        raise InvalidVinError(f"VIN must have 17 characters, got {len(vin)}: {vin!r}")
    try:
        total = sum(_VALUES[c] * w for c, w in zip(vin, _WEIGHTS, strict=True))
    except KeyError as e:
        raise InvalidVinError(f"VIN {vin!r} contains {e.args[0]!r}, not a VIN character") from e
    remainder = total % 11
    return "X" if remainder == 10 else str(remainder)


def is_valid_vin(vin: object) -> bool:
    """True for a 17-character VIN of allowed characters whose check digit is right."""
    if not isinstance(vin, str) or len(vin) != 17:
        return False
    try:
        return vin[8] == check_digit(vin)
    except InvalidVinError:
        return False


def validate_vin(vin: object) -> str:
    """The VIN itself when valid, else `InvalidVinError` saying why."""
    if not isinstance(vin, str):
        raise InvalidVinError(f"VIN must be a string, got {type(vin).__name__}")
    expected = check_digit(vin)
    if vin[8] != expected:
        raise InvalidVinError(f"VIN {vin!r} has check digit {vin[8]!r}, expected {expected!r}")
    return vin


def random_vin(rng: random.Random, wmi: str | None = None) -> str:
    """A valid VIN drawn from `rng`: WMI, random descriptor, check digit, year, plant, serial."""
    wmi = wmi or rng.choice(CHINA_WMIS)
    descriptor = "".join(rng.choice(ALPHABET) for _ in range(5))
    tail = rng.choice(_YEAR_CODES) + rng.choice(ALPHABET) + f"{rng.randrange(1_000_000):06d}"
    draft = f"{wmi}{descriptor}0{tail}"
    return draft[:8] + check_digit(draft) + draft[9:]
