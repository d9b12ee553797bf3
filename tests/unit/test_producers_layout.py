"""The producers' data flows one way: `producers.sim` makes frames, `producers.publish`
encodes and sends them. The simulator never imports the publishing side, and no producer
module imports another part of the platform (only the shared core: `schemas`, `vdp`)."""

from __future__ import annotations

import ast
from pathlib import Path

PRODUCERS = Path(__file__).resolve().parents[2] / "producers"


def _imports(path: Path) -> set[str]:
    """Every module `path` imports, at the top or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _offending(folder: Path, packages: tuple[str, ...]) -> dict[str, list[str]]:
    """The modules under `folder` that import any of `packages` (or what is inside them)."""
    found = {}
    for path in sorted(folder.rglob("*.py")):
        bad = sorted(
            n for n in _imports(path) if any(n == p or n.startswith(p + ".") for p in packages)
        )
        if bad:
            found[str(path.relative_to(PRODUCERS.parent))] = bad
    return found


def test_the_simulator_does_not_import_the_publishing_side() -> None:
    assert (PRODUCERS / "sim").is_dir()
    assert _offending(PRODUCERS / "sim", ("producers.publish",)) == {}


def test_producers_import_no_other_part_of_the_platform() -> None:
    assert _offending(PRODUCERS, ("processors", "query", "deploy", "benchmarks")) == {}
