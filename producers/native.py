"""The producers' two C modules and their pure-Python twins: which of each runs.

`producers/sim/_fleetstep.c` (what a tick computes for every driving car) and
`producers/publish/_framewire.c` (the bulk frame encoder) are speed-ups. `pip install`
builds them where it finds a C compiler and warns where it does not; each has a twin in
Python (`producers/sim/purestep.py`, `producers/publish/purewire.py`) with the same
functions, arguments and results, byte for byte, several times slower. A twin runs where
its C module was not built, or everywhere after `force_pure()` (the tests run both on the
same fleet and compare).

`check_kind` is the twins' one element-type check, as `producers/_buffers.h` is the C
modules'.
"""

from __future__ import annotations

import importlib
import logging
from types import ModuleType
from typing import Any

import numpy as np

_log = logging.getLogger(__name__)
_forced = False


def force_pure(on: bool = True) -> None:
    """Run the pure-Python twins even where the C modules were built (for tests)."""
    global _forced
    _forced = on


class Twins:
    """A C module and its pure-Python twin, by module name, imported when first used.

    Attributes are the running module's: `Twins(...).step(...)` calls the C `step`, or the
    twin's where the C module is missing or `force_pure` is on.
    """

    def __init__(self, compiled: str, pure: str) -> None:
        self.names = (compiled, pure)
        self._compiled: ModuleType | None = None
        self._pure: ModuleType | None = None
        self._looked = False

    @property
    def compiled(self) -> ModuleType | None:
        """The C module, or None where it was not built."""
        if not self._looked:
            self._looked = True
            try:
                self._compiled = importlib.import_module(self.names[0])
            except ImportError:
                _log.warning(
                    "%s is not built (no C compiler when the package was installed?): "
                    "its pure-Python twin %s runs, with the same output, slower",
                    *self.names,
                )
        return self._compiled

    @property
    def pure(self) -> ModuleType:
        if self._pure is None:
            self._pure = importlib.import_module(self.names[1])
        return self._pure

    @property
    def module(self) -> ModuleType:
        """The module that runs."""
        compiled = None if _forced else self.compiled
        return self.pure if compiled is None else compiled

    def __getattr__(self, name: str) -> Any:
        return getattr(self.module, name)


_KINDS = {np.float64: "float64", np.bool_: "bool", np.int64: "int64", np.uint64: "uint64"}


def check_kind(array: Any, kind: type[np.generic], what: str) -> np.ndarray[Any, Any]:
    """`array` when it is a NumPy array of exactly `kind` in the machine's byte order.

    A cast would hide a simulator bug, so any other type is refused, as the C side does.
    """
    dtype = getattr(array, "dtype", None)
    if not isinstance(array, np.ndarray) or dtype != np.dtype(kind) or not dtype.isnative:
        got = dtype.str if dtype is not None else type(array).__name__
        raise TypeError(f"{what} must be {_KINDS[kind]}, got {got}")
    return array
