"""`--help` of every command reads as written: real metavars, the real defaults, runnable examples."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from earthgen_cli.cli.app import app

COMMANDS = ["translate", "joint", "inpaint", "extend", "info", "build-dataset", "render-osm", "sample-data",
            "train", "evaluate", "export"]


def _help(command: str) -> str:
    result = CliRunner().invoke(app, [command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_no_python_types_as_metavars(command):
    assert "<list[" not in _help(command) and "<dict" not in _help(command)


@pytest.mark.parametrize("command", ["joint", "inpaint", "extend"])
def test_generation_options_name_their_form_and_defaults(command):
    text = _help(command)
    assert "--cond MOD=PATH" in text
    assert "4 on CPU, 16 on CUDA" in text  # --batch-size's default by device


def test_evaluate_help_names_the_default_model_and_a_runnable_example():
    text = _help("evaluate")
    assert "default (the model shipped with earthgen)" in text and "none: baselines only" not in text
    assert "--max-chips" in text and "[default: 32]" in text
    lines = [line.strip() for line in text.splitlines()]
    assert "earthgen evaluate --data ds/ --model default -o report/" in lines
    example = next(i for i, line in enumerate(lines) if line.startswith("earthgen evaluate --data ds/ --model ckpt/"))
    assert lines[example].endswith("\\") and lines[example + 1].startswith("--unet runs/pairwise-unet")
