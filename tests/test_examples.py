"""Run every script in examples/ as a user would, and check the numbers it prints."""

from __future__ import annotations

import csv
import math
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(EXAMPLES.glob("*.py"))


@dataclass(frozen=True)
class Run:
    """What an example printed, and the folder it wrote to."""

    stdout: str
    out: Path


def run(script: Path, out: Path) -> Run:
    """Run ``script --out out``; fail with its output unless it exits 0."""
    result = subprocess.run(
        [sys.executable, str(script), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"{script.name} failed:\n{result.stdout}\n{result.stderr}"
    return Run(result.stdout, out)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """Every example, run once for the whole module (each into its own folder), in parallel."""
    folders = {s.name: tmp_path_factory.mktemp(s.stem) for s in SCRIPTS}
    with ThreadPoolExecutor(max_workers=len(SCRIPTS) or 1) as pool:
        futures = {s.name: pool.submit(run, s, folders[s.name]) for s in SCRIPTS}
        return {name: future.result() for name, future in futures.items()}


def rows(pattern: str, text: str) -> list[tuple[str, list[float]]]:
    """Each match of ``pattern`` (one text group, then numbers) as (text, numbers)."""
    return [
        (m[1], [float(g) for g in m.groups()[1:]]) for m in re.finditer(pattern, text, re.MULTILINE)
    ]


def number(text: str, pattern: str) -> float:
    """The number captured by ``pattern`` in ``text``."""
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not found in:\n{text}"
    return float(match.group(1))


def sigmoid(z: float | np.ndarray) -> float | np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_example_runs(script: Path, runs: dict[str, Run]) -> None:
    assert runs[script.name].stdout.strip()


def test_examples_folder_holds_the_teaching_scripts() -> None:
    assert {"toy_effects.py", "custom_scm.py", "draw_graphs.py"} <= {s.name for s in SCRIPTS}


NUM = r"\s+(-?\d+\.\d+)"


def test_toy_effects_prints_the_identities_of_section_3_3(runs: dict[str, Run]) -> None:
    text = runs["toy_effects.py"].stdout
    single = rows(rf"^(erasure|self-repair){NUM * 5}$", text)
    assert len(single) == 12
    for model, (u, x_new, te, de, ie) in single:
        assert de == pytest.approx(x_new - u)
        if model == "erasure":
            assert te == 0.0
            assert ie == pytest.approx(u - x_new)
        else:
            assert te == (0.0 if x_new == 0.0 else x_new)
            assert ie == pytest.approx(u)
        assert de + ie == pytest.approx(te)

    mean_u = number(text, r"mean\(u\) = (-?\d+\.\d+)")
    averaged = rows(rf"^(erasure|self-repair)\s+E_P\(u\){NUM * 5}$", text)
    assert len(averaged) == 4
    for model, (x_new, te, de, ie, stderr) in averaged:
        assert de == pytest.approx(x_new - mean_u, abs=2e-3)
        assert ie == pytest.approx(te - de, abs=2e-3)
        assert te == (x_new if model == "self-repair" else 0.0)
        assert abs(mean_u) < 4 * stderr  # u ~ N(0, 1)
    assert "DE + IE = TE = 0" in text

    with (runs["toy_effects.py"].out / "toy_effects.csv").open() as f:
        records = list(csv.DictReader(f))
    assert len(records) == 16
    assert set(records[0]) == {"model", "u", "x_new", "TE", "DE", "IE"}


def test_custom_scm_matches_closed_forms(runs: dict[str, Run]) -> None:
    text, out = runs["custom_scm.py"].stdout, runs["custom_scm.py"].out
    assert "parents of cancer: tar, genotype" in text
    assert "parents of smoking: genotype, u_smoke" in text

    # In the context genotype = 1, no noise: tar is 2.2 with smoking and 0.2 without.
    te = float(sigmoid(-3 + 1.2 * 2.2 + 1.5) - sigmoid(-3 + 1.2 * 0.2 + 1.5))
    assert number(text, r"TE = (-?\d+\.\d+)") == pytest.approx(te, abs=1e-4)
    assert number(text, r"DE = (-?\d+\.\d+)") == 0.0
    assert number(text, r"IE = (-?\d+\.\d+)") == pytest.approx(te, abs=1e-4)
    filtered = float(sigmoid(-3 + 1.2 * 1.2 + 1.5) - sigmoid(-3 + 1.2 * 2.2 + 1.5))
    assert number(text, r"do\(tar \+= -1\.0\), changes the risk here by (-?\d+\.\d+)") == (
        pytest.approx(filtered, abs=1e-4)
    )

    # The average effect of smoking, by Gauss-Hermite quadrature over u_tar ~ N(0, 1) and
    # the genotype ~ Bernoulli(0.3); the printed Monte Carlo estimate is within 4 stderr.
    nodes, weights = np.polynomial.hermite_e.hermegauss(40)
    weights = weights / weights.sum()
    ate = sum(
        p
        * float(
            weights
            @ (
                sigmoid(-3 + 1.2 * (2.2 + 0.3 * nodes) + 1.5 * g)
                - sigmoid(-3 + 1.2 * (0.2 + 0.3 * nodes) + 1.5 * g)
            )
        )
        for g, p in ((0.0, 0.7), (1.0, 0.3))
    )
    match = re.search(r"average effect of smoking\s+E\[TE\] = (\d+\.\d+) \+- (\d+\.\d+)", text)
    assert match
    estimate, stderr = float(match[1]), float(match[2])
    assert abs(estimate - ate) < 4 * stderr
    observed = number(text, r"E\[cancer \| non-smoker\] = (-?\d+\.\d+)")
    assert observed > estimate  # confounded by the genotype
    assert number(text, r"their difference, (-?\d+\.\d+)") == estimate
    assert "removed edges: genotype -> smoking, u_smoke -> smoking" in text
    assert (out / "smoking_do_smoking.png").read_bytes()[:4] == b"\x89PNG"
    assert math.isfinite(number(text, r"effect of the filter\s+E\[TE\] = (-?\d+\.\d+)"))


def test_draw_graphs_writes_the_four_pictures(runs: dict[str, Run]) -> None:
    text, out = runs["draw_graphs.py"].stdout, runs["draw_graphs.py"].out
    assert text.count("do(x = 0.0) cuts u->x") == 2
    names = ["erasure", "erasure_do_x0", "self_repair", "self_repair_do_x0"]
    assert sorted(p.stem for p in out.glob("*.png")) == names
    for name in names:
        data = (out / f"{name}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"wrote {out / name}.png" in text


def test_trace_network_matches_hook_and_closed_form(runs: dict[str, Run]) -> None:
    text, out = runs["trace_network.py"].stdout, runs["trace_network.py"].out
    te = number(text, r"zero-ablating f1: TE = ([-+\d.]+)")
    de = number(text, r"zero-ablating f1: TE = [-+\d.]+, DE = ([-+\d.]+)")
    ie = number(text, r"IE = ([-+\d.]+)")
    assert ie != 0.0  # f1 also reaches y through f2
    assert math.isclose(te, number(text, r"zeroing hook: TE = ([-+\d.]+)"), abs_tol=2e-6)
    assert math.isclose(de, number(text, r"-w \. f1\(x\): ([-+\d.]+)"), abs_tol=2e-6)
    assert (out / "residual.png").read_bytes()[:4] == b"\x89PNG"
    assert "('f1', 'readout')" in text  # the residual stream carries f1 straight to y


def test_ablation_sweep_runs_in_suffixes_and_matches_hooks(runs: dict[str, Run]) -> None:
    text, out = runs["ablation_sweep.py"].stdout, runs["ablation_sweep.py"].out
    assert "ran as: batched, suffix from position 9 of 10" in text
    found = re.search(r"max difference to hooked forwards: (\S+)", text)
    assert found is not None
    assert float(found.group(1)) < 1e-5
    with (out / "sweep.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["site"] for r in rows] == [
        "blocks.0.out",
        "blocks.0.mlp",
        "blocks.1.out",
        "blocks.1.mlp",
    ]
    for r in rows:  # the last MLP reaches the logit directly only: its TE is its DE
        assert math.isfinite(float(r["te_resample_stderr"]))
    assert math.isclose(float(rows[-1]["te_zero"]), float(rows[-1]["de_zero"]), abs_tol=1e-6)
