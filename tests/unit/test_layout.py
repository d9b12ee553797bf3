"""The layout keeps its promises: the per-batch path imports no Kafka, Faust or ClickHouse
client, and each definition the issue tracker asked for lives in one place."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from schemas.tables import OPEN_END, OPEN_END_MS, TABLES

REPO = Path(__file__).resolve().parents[2]
FORBIDDEN = ("confluent_kafka", "aiokafka", "kafka", "faust", "mode", "clickhouse_connect")
BATCH = sorted(p.stem for p in (REPO / "processors" / "batch").glob("*.py") if p.stem != "__init__")


def test_the_batch_path_loads_no_client_library() -> None:
    modules = ", ".join(f"processors.batch.{name}" for name in BATCH)
    code = (
        f"import sys; import {modules}; "
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({FORBIDDEN!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"processors.batch pulls in {out.stdout.strip()}"


@pytest.mark.parametrize("name", BATCH)
def test_a_batch_module_imports_only_the_core_and_its_own_stage(name: str) -> None:
    tree = ast.parse((REPO / "processors" / "batch" / f"{name}.py").read_text())
    imported = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
    } | {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    ours = {
        m for m in imported if m.split(".")[0] in ("processors", "producers", "query", "deploy")
    }
    assert all(m.startswith("processors.batch.") for m in ours), ours


def test_the_open_interval_end_is_one_instant() -> None:
    assert int(OPEN_END.timestamp() * 1000) == OPEN_END_MS


def test_no_module_spells_the_open_interval_end_itself() -> None:
    offenders = [
        str(path.relative_to(REPO))
        for part in ("processors", "producers", "query", "deploy", "schemas", "vdp", "benchmarks")
        for path in (REPO / part).rglob("*.py")
        if path.name != "tables.py"
        and ("2299" in path.read_text() or "10_413_791" in path.read_text())
    ]
    assert offenders == []


def test_no_module_but_the_contract_lists_a_table_s_columns() -> None:
    # A tuple of string constants that is some table's column list, outside schemas/tables.py.
    columns = {table.columns for table in TABLES}
    offenders = []
    for part in ("processors", "producers", "query", "deploy", "benchmarks"):
        for path in (REPO / part).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Tuple | ast.List) and all(
                    isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts
                ):
                    if tuple(e.value for e in node.elts) in columns:  # type: ignore[attr-defined]
                        offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert offenders == []


PARTS = ("producers", "processors", "query", "deploy")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    found |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    return found


@pytest.mark.parametrize("part", PARTS)
def test_a_part_imports_only_itself_and_the_shared_core(part: str) -> None:
    # Data flows one way and parts meet only in schemas/ and vdp/; benchmarks and the `vdp`
    # entry point may reach every part.
    sideways = sorted(
        f"{path.relative_to(REPO)}: {module}"
        for path in (REPO / part).rglob("*.py")
        for module in _imports(path)
        if module.split(".")[0] in (*PARTS, "benchmarks") and module.split(".")[0] != part
    )
    assert sideways == []


def test_the_shared_core_imports_no_part() -> None:
    offenders = sorted(
        f"{path.relative_to(REPO)}: {module}"
        for core in ("schemas", "vdp")
        for path in (REPO / core).rglob("*.py")
        if path.name != "cli.py"
        for module in _imports(path)
        if module.split(".")[0] in (*PARTS, "benchmarks")
    )
    assert offenders == []
