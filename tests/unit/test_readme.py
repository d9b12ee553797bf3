"""The README stays true: the configuration table names every setting; CI runs the test command."""

import re
from pathlib import Path

from vdp.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def test_readme_configuration_table_lists_every_setting() -> None:
    readme = (REPO / "README.md").read_text()
    documented = set(re.findall(r"^\| `(VDP_[A-Z_]+)` \|", readme, flags=re.M))
    expected = {f"VDP_{name.upper()}" for name in Settings.model_fields}
    assert documented == expected


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (REPO / "README.md").read_text()
    command = re.search(r"# 2\. .*\n(.+)\n", readme)
    assert command is not None
    ci = (REPO / ".ci" / "run").read_text()
    assert command.group(1).strip() in ci.splitlines()
