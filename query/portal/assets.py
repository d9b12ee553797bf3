"""The portal's browser assets from the npm registry, pinned exactly and checked.

Nothing is loaded from a CDN: the chart library (uPlot) and Swagger UI (for `/docs`) are
fetched once by `deploy/setup.sh` (`python -m query.portal.assets`) with the ordinary npm
client (`npm pack NAME@VERSION`), checked against the registry's SHA-512 integrity pinned
here, and the few files the pages use are unpacked into `query/portal/vendor/<name>/`
(git-ignored). The service serves them from there, so every page works offline.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

VENDOR = Path(__file__).resolve().parent / "vendor"


@dataclass(frozen=True)
class NpmPackage:
    name: str
    version: str
    integrity: str  # the registry's `dist.integrity` of this exact version
    files: tuple[str, ...]  # paths inside the package to keep (under `package/`)

    @property
    def directory(self) -> Path:
        return VENDOR / self.name

    def url(self, file: str) -> str:
        """Where the service serves `file` (see `query/portal/router.py`)."""
        return f"/portal/vendor/{self.name}/{Path(file).name}"

    def present(self) -> bool:
        stamp = self.directory / ".version"
        return (
            stamp.is_file()
            and stamp.read_text().strip() == self.version
            and all((self.directory / Path(f).name).is_file() for f in self.files)
        )


UPLOT = NpmPackage(
    "uplot",
    "1.6.32",
    "sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw==",
    ("dist/uPlot.iife.min.js", "dist/uPlot.min.css", "LICENSE"),
)
SWAGGER_UI = NpmPackage(
    "swagger-ui-dist",
    "5.35.0",
    "sha512-U06rpMtW9V3XPGOBeamTUSr0Z09jMX4IJuANpE/EZbAhw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ==",
    ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png", "LICENSE", "NOTICE"),
)
PACKAGES = (UPLOT, SWAGGER_UI)


def missing() -> list[str]:
    """`name@version` of every pinned package not (or not fully) unpacked."""
    return [f"{p.name}@{p.version}" for p in PACKAGES if not p.present()]


def integrity_of(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def unpack(package: NpmPackage, tarball: bytes) -> None:
    """Check `tarball` against the pinned integrity, then keep the package's files."""
    got = integrity_of(tarball)
    if got != package.integrity:
        raise RuntimeError(
            f"{package.name}@{package.version}: integrity {got} is not the pinned "
            f"{package.integrity}"
        )
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "package.tgz"
        archive.write_bytes(tarball)
        with tarfile.open(archive) as tar:
            members = [tar.getmember(f"package/{f}") for f in package.files]
            tar.extractall(tmp, members=members, filter="data")
        target = package.directory
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for file in package.files:
            shutil.copyfile(Path(tmp) / "package" / file, target / Path(file).name)
    (target / ".version").write_text(package.version + "\n")


def npm_pack(package: NpmPackage, npm: str = "npm") -> bytes:
    """The package's tarball as the npm client fetches it from the configured registry."""
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [npm, "pack", f"{package.name}@{package.version}", "--json", "--silent"],
            cwd=tmp,
            check=True,
            capture_output=True,
            text=True,
        )
        filename = json.loads(out.stdout)[0]["filename"]
        return (Path(tmp) / filename).read_bytes()


def fetch(npm: str = "npm") -> list[str]:
    """Fetch and unpack every package not yet present; `name@version` of those fetched."""
    fetched = []
    for package in PACKAGES:
        if package.present():
            continue
        unpack(package, npm_pack(package, npm))
        fetched.append(f"{package.name}@{package.version}")
    return fetched


def main() -> int:
    if not missing():
        print("portal assets: all present in", VENDOR)
        return 0
    if shutil.which("npm") is None:
        print("portal assets: npm (Node.js) is needed to fetch", ", ".join(missing()))
        return 1
    try:
        fetched = fetch()
    except (subprocess.CalledProcessError, RuntimeError, KeyError, ValueError) as e:
        detail = getattr(e, "stderr", "") or e
        print(f"portal assets: fetching failed: {detail}", file=sys.stderr)
        return 1
    print(f"portal assets: {', '.join(fetched)} in {VENDOR}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
