"""The command line and the toy-model report, run as a user would."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

from scmnet.cli import main


def test_toys_report(tmp_path: Path) -> None:
    out = tmp_path / "toys"
    assert main(["toys", "--out", str(out), "--samples", "200", "--seed", "3"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["all_identities_hold"] is True
    assert summary["seed"] == 3
    assert summary["samples"] == 200
    rows = list(csv.DictReader((out / "effects.csv").open()))
    assert len(rows) == summary["rows"] == 45
    erasure = [
        r for r in rows if r["model"] == "erasure" and r["u"] == "3.0" and r["x_treated"] == "0.0"
    ]
    assert (float(erasure[0]["te"]), float(erasure[0]["de"]), float(erasure[0]["ie"])) == (
        0.0,
        -3.0,
        3.0,
    )
    assert (out / "report.md").read_text().startswith("# Toy models")
    for name in ("erasure", "self-repair", "linear-mediation"):
        for suffix in ("", "-do-x"):
            png = out / "graphs" / f"{name}{suffix}.png"
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_module_entry_point_and_bad_arguments(tmp_path: Path) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "scmnet", "toys", "--out", str(tmp_path), "--samples", "5"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert "all identities hold" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "scmnet", "toys", "--samples", "0"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert "must be a positive integer, got 0" in bad.stderr
