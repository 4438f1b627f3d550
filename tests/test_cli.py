"""The ``pyimgenc`` command line: help, info, and the demo on a real MNIST digit."""
from __future__ import annotations

from pathlib import Path

import pytest

from pyimgenc import cli

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def test_help_lists_commands(capsys):
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    assert "info" in out and "demo" in out


def test_info_reports_engines(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert "backends available" in out and "python" in out


@pytest.mark.skipif(not (DATA / "mnist" / "mnist.npz").is_file(),
                    reason=f"real MNIST not found at {DATA}/mnist/mnist.npz")
def test_demo_is_exact_on_real_digit(capsys):
    assert cli.main(["demo", "--bits", "512", "--data", str(DATA), "--index", "3", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "equal to the plaintext integer computation: YES" in out


def test_demo_without_data_says_where_to_look(tmp_path):
    with pytest.raises(SystemExit, match="MNIST not found"):
        cli.main(["demo", "--data", str(tmp_path), "--quiet"])
