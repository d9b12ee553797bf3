"""The one `vdp` entry point reaches every part."""

import argparse

import pytest

from vdp.cli import build_parser, main


def _commands(parser: argparse.ArgumentParser) -> set[str]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices)


def test_every_part_registers_its_commands() -> None:
    assert {
        "stack",
        "simulate",
        "bench-produce",
        "migrate",
        "serve",
        "token",
        "bench-query",
        "process",
        "bench-process",
        "dlq",
        "demo",
    } <= _commands(build_parser())


def test_every_command_has_help_a_person_can_act_on(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    for command in _commands(parser):
        with pytest.raises(SystemExit) as done:
            main([command, "--help"])
        assert done.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith(f"usage: vdp {command}"), command
        assert len(out.splitlines()) > 3, f"'vdp {command} --help' says almost nothing"


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main([])
    assert done.value.code == 2
    assert "COMMAND" in capsys.readouterr().err
