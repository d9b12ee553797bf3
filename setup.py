"""The producers' two C modules, built where they can be (everything else is in pyproject.toml).

Both are optional speed-ups with pure-Python twins (`producers/native.py`): a host without
a C compiler, such as one that only serves the owner API, installs and runs without them.
`VDP_BUILD_C` picks how hard to try:
  auto (default)  build them; if that fails, warn and install without them;
  strict          build them with -Werror, and fail the install if either fails (CI);
  no              do not try (the twins run).
"""

from __future__ import annotations

import os

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

MODE = os.environ.get("VDP_BUILD_C", "auto")
if MODE not in ("auto", "strict", "no"):
    raise SystemExit(f"VDP_BUILD_C must be auto, strict or no, not {MODE!r}")
# A new compiler's new warning must not break a user's install; CI still sees it.
WARNINGS = ["-Wall", "-Werror"] if MODE == "strict" else ["-Wall"]


class BuildExt(build_ext):
    """`build_ext` that leaves no earlier build of a module beside its source.

    An editable install copies each module it built into the source tree; where a
    build fails (an optional one only warns), the older copy would otherwise be imported
    in place of the pure twin, out of step with the Python around it.
    """

    def run(self) -> None:
        if self.editable_mode or self.inplace:
            for ext in self.extensions:
                stale = self.get_ext_filename(ext.name)
                if os.path.exists(stale):
                    os.remove(stale)
        super().run()


def extension(name: str, source: str, *flags: str) -> Extension:
    return Extension(
        name,
        [source],
        depends=["producers/_buffers.h"],
        extra_compile_args=["-O2", *WARNINGS, *flags],
        optional=MODE != "strict",
    )


setup(
    cmdclass={"build_ext": BuildExt},
    ext_modules=[]
    if MODE == "no"
    else [
        # The bulk frame encoder (producers/publish/wire.py).
        extension("producers.publish._framewire", "producers/publish/_framewire.c"),
        # What a tick computes for every driving car: IEEE doubles in the order written, so
        # a car's numbers depend on neither the compiler nor the pure twin.
        extension(
            "producers.sim._fleetstep",
            "producers/sim/_fleetstep.c",
            "-ffp-contract=off",
            "-fno-fast-math",
        ),
    ],
)
