"""The owner portal without a database or a browser: what the pages load is served by the
service itself (no CDN, no other host), the vendored packages are the pinned ones, the
scripts parse and their imports resolve, and development sign-in exists only with the
development secret. The pages themselves are tested in Chromium (tests/e2e/test_portal.py).
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from query.app import create_app
from query.auth import verifier_from_settings
from query.portal import assets
from query.portal.router import STATIC
from vdp.settings import Settings

JS = STATIC / "js"
_URL = re.compile(r"""(?:src|href)=["']([^"']+)["']""")
_IMPORT = re.compile(r"""import\s*\{([^}]*)\}\s*from\s*["'](\./[^"']+)["']""")


class _NoClickHouse:
    def query(self, *args: object, **kwargs: object) -> None:
        raise ConnectionError("no database in the unit tier")


def _client(settings: Settings | None = None) -> TestClient:
    app = create_app(settings or Settings(), client=_NoClickHouse())  # type: ignore[arg-type]
    return TestClient(app)


def test_every_file_the_pages_load_is_served_here() -> None:
    assert not assets.missing(), "run deploy/setup.sh: it fetches the portal's npm packages"
    client = _client()
    page = client.get("/portal/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    docs = client.get("/docs")
    assert docs.status_code == 200
    urls = _URL.findall(page.text) + _URL.findall(docs.text)
    urls += [f"/portal/static/js/{p.name}" for p in JS.glob("*.js")]
    assert len(urls) > 10
    for url in urls:
        if url.startswith("data:") or url.startswith("#"):
            continue
        assert url.startswith("/"), f"{url}: not served by the platform"
        assert client.get(url).status_code == 200, url
    assert client.get("/").headers.get("location") is None  # followed to the portal
    assert client.get("/", follow_redirects=False).headers["location"] == "/portal/"


def test_no_page_or_script_names_another_host() -> None:
    for path in [*STATIC.rglob("*.*"), Path("docs")]:
        text = _client().get("/docs").text if path == Path("docs") else path.read_text()
        assert not re.search(r"https?://", text), f"{path} names another host"
        assert "cdn" not in text.lower(), path


def test_scripts_parse_and_every_import_is_exported() -> None:
    node = shutil.which("node")
    for path in JS.glob("*.js"):
        source = path.read_text()
        if node:  # a syntax error would stop the whole module graph in the browser
            done = subprocess.run(
                [node, "--input-type=module", "--check"], input=source, text=True,
                capture_output=True, timeout=60,
            )  # fmt: skip
            assert done.returncode == 0, f"{path.name}: {done.stderr}"
        for names, target in _IMPORT.findall(source):
            exported = (JS / target).read_text()
            for name in (n.strip() for n in names.split(",") if n.strip()):
                pattern = rf"export\s+(?:async\s+)?(?:function|const|let|class)\s+{name}\b"
                assert re.search(pattern, exported), f"{path.name}: {target} lacks {name}"


def _tarball(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_only_the_pinned_tarball_is_unpacked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(assets, "VENDOR", tmp_path)
    tarball = _tarball({"dist/chart.js": b"chart", "LICENSE": b"MIT"})
    pinned = assets.NpmPackage("chart", "1.0.0", assets.integrity_of(tarball),
                               ("dist/chart.js", "LICENSE"))  # fmt: skip
    tampered = _tarball({"dist/chart.js": b"chart; steal()", "LICENSE": b"MIT"})
    with pytest.raises(RuntimeError, match="not the pinned"):
        assets.unpack(pinned, tampered)
    assert not pinned.present()
    assets.unpack(pinned, tarball)
    assert pinned.present() and (tmp_path / "chart" / "chart.js").read_bytes() == b"chart"
    for package in assets.PACKAGES:  # real pins: an exact version and a SHA-512
        assert re.fullmatch(r"\d+\.\d+\.\d+", package.version), package
        assert package.integrity.startswith("sha512-") and len(package.integrity) == 95


def test_development_sign_in_only_with_the_development_secret() -> None:
    dev = _client()
    assert dev.get("/portal/config.json").json()["development_sign_in"] is True
    asked = {"owner_id": "alice", "scopes": ["driving", "consent:write"]}
    minted = dev.post("/portal/dev/token", json=asked)
    assert minted.status_code == 200, minted.text
    who = verifier_from_settings(Settings()).verify(minted.json()["token"])
    assert (who.owner_id, who.categories, who.permissions) == (
        "alice", {"driving"}, {"consent:write"},
    )  # fmt: skip
    assert (
        dev.post("/portal/dev/token", json={"owner_id": "alice", "scopes": ["root"]}).status_code
        == 400
    )
    assert dev.post("/portal/dev/token", json={"owner_id": " "}).status_code == 400

    real = _client(Settings(query_jwt_key=SecretStr("a-real-secret-" * 3)))
    assert real.get("/portal/config.json").json()["development_sign_in"] is False
    assert real.post("/portal/dev/token", json={"owner_id": "alice"}).status_code == 404
    assert real.get("/portal/dev/owners").status_code == 404
    assert real.get("/portal/").status_code == 200  # the page itself: paste a token
