"""``scmnet graph``, run as a user would: import-path models, Hugging Face directories, errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import networkx as nx
import pytest

from scmnet.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


def wrote(out: str) -> list[str]:
    """The file names that ``scmnet graph`` says it wrote."""
    return [Path(line.split()[1]).name for line in out.splitlines() if line.startswith("  wrote ")]


# -- import-path models ---------------------------------------------------------------------------


def test_import_path_model_writes_every_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "erasure"
    args = ["graph", "scmnet.toys.modules:ErasureNet", "--inputs", "float:3", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("scmnet graph: traced ErasureNet on random inputs float:3 (seed 0)")
    assert "(1 input, 3 variables, 4 edges; front end fx)" in printed
    assert wrote(printed) == ["graph.graphml", "graph.dot", "graph.png"]
    assert (out / "graph.png").read_bytes()[:8] == PNG
    g = nx.read_graphml(out / "graph.graphml")
    assert sorted(g.edges) == [("f", "y"), ("u", "x"), ("x", "f"), ("x", "y")]
    assert g.nodes["u"]["shape"] == "3"
    assert g.nodes["f"]["module_path"] == "f"
    assert '"x" -> "f";' in (out / "graph.dot").read_text()


def test_collapse_depth_and_formats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "self-repair"
    args = ["graph", "scmnet.toys.modules:SelfRepairNet", "--inputs", "float:1x2"]
    assert main([*args, "--collapse", "1", "--format", "dot,png", "--out", str(out)]) == 0
    assert wrote(capsys.readouterr().out) == ["graph.dot", "blocks.dot", "blocks.png"]
    assert sorted(p.name for p in out.iterdir()) == ["blocks.dot", "blocks.png", "graph.dot"]
    assert '"x" [kind="endogenous", intervention="", size="1", members="x"];' in (
        (out / "blocks.dot").read_text()
    )
    assert main([*args, "--collapse", "none", "--format", "graphml", "--out", str(out)]) == 0
    assert wrote(capsys.readouterr().out) == ["graph.graphml"]


def test_import_paths_from_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "scmnet_cli_graph_net.py").write_text(
        textwrap.dedent(
            """
            import torch
            from torch import nn

            def make():
                torch.manual_seed(0)
                return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))

            def inputs():
                return torch.ones(2, 4)

            net = make()
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "scmnet_cli_graph_net", raising=False)
    try:
        for model in ("scmnet_cli_graph_net:make", "scmnet_cli_graph_net:net"):
            args = ["graph", model, "--inputs", "scmnet_cli_graph_net:inputs", "--out", "o"]
            assert main([*args, "--variables", "0", "2", "--format", "graphml"]) == 0
            assert "on the inputs of scmnet_cli_graph_net:inputs" in capsys.readouterr().out
            g = nx.read_graphml(tmp_path / "o" / "graph.graphml")
            assert list(g.edges) == [("input", "0"), ("0", "2")]
            assert g.nodes["2"]["shape"] == "2x2"
    finally:
        sys.modules.pop("scmnet_cli_graph_net", None)


def test_core_does_not_import_transformers_or_the_adapters(tmp_path: Path) -> None:
    code = (
        "import sys; from scmnet.cli import main; "
        f"main(['graph', 'scmnet.toys.modules:ErasureNet', '--inputs', 'float:2', "
        f"'--format', 'dot', '--out', {str(tmp_path)!r}]); "
        "print('transformers' in sys.modules, "
        "[m for m in sys.modules if m.startswith('scmnet.adapters')])"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.splitlines()[-1] == "False []"


# -- Hugging Face model directories ---------------------------------------------------------------


def test_hf_directory_collapsed_by_layer(
    hf_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "llama"
    assert main(["graph", str(hf_dir), "--collapse", "3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "traced LlamaForCausalLM on random token ids long:1x8 (seed 0; no tokenizer)" in printed
    assert "(1 input, 9 variables" in printed
    assert wrote(printed) == [
        "graph.graphml",
        "blocks.graphml",
        "graph.dot",
        "blocks.dot",
        "blocks.png",
    ]
    assert "(7 blocks at depth 3)" in printed
    assert (out / "blocks.png").read_bytes()[:8] == PNG
    blocks = nx.read_graphml(out / "blocks.graphml")
    assert list(blocks) == [
        "input_ids",
        "model.embed_tokens",
        "model.layers.0",
        "model.layers.1",
        "model.layers.2",
        "model.norm",
        "lm_head",
    ]
    assert nx.is_directed_acyclic_graph(blocks)
    assert blocks.nodes["model.layers.1"]["members"] == (
        "model.layers.1.self_attn,model.layers.1.mlp"
    )
    full = nx.read_graphml(out / "graph.graphml")
    assert full.nodes["input_ids"]["shape"] == "1x8"
    assert full.nodes["input_ids"]["dtype"] == "int64"
    assert full.nodes["model.layers.0.mlp"]["module_type"].endswith("LlamaMLP")
    assert '"model.layers.0.mlp" -> "model.layers.1.self_attn";' in (out / "graph.dot").read_text()


def test_hf_directory_with_tokenizer(
    hf_dir_with_tokenizer: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "tok"
    args = ["graph", str(hf_dir_with_tokenizer), "--format", "graphml", "--out", str(out)]
    assert main(args) == 0
    assert "on the tokenized sentence 'The Eiffel Tower" in capsys.readouterr().out
    g = nx.read_graphml(out / "graph.graphml")
    assert g.nodes["input_ids"]["shape"] == "1x9"


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["scmnet.toys.modules:Erasure", "--inputs", "float:3"], "did you mean 'ErasureNet'"),
        (["scmnet.toy.modules:ErasureNet", "--inputs", "float:3"], "cannot import module"),
        (["no_such_thing"], "neither an existing directory nor an import path"),
        (["./no/such/dir"], "there is no directory './no/such/dir'"),
        (["scmnet.toys.modules:ErasureNet"], "needs example inputs: pass --inputs"),
        (["scmnet.toys.modules:ErasureNet", "--inputs", "floot:3"], "unknown dtype 'floot'"),
        (["scmnet.toys.modules:ErasureNet", "--inputs", "float:3xa"], "bad shape '3xa'"),
        (["scmnet.toys:erasure", "--inputs", "float:3"], "returned a SCM, not an nn.Module"),
        (["scmnet.toys:__doc__", "--inputs", "float:3"], "is a str, not an nn.Module"),
        (["scmnet.toys.modules:ErasureNet", "--inputs", "scmnet.toys:nope"], "no attribute"),
    ],
)
def test_user_errors_exit_2_with_a_message(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["graph", *args, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("scmnet graph: error: ")
    assert message in err


def test_directory_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "has no config.json, so it is not a Hugging Face model directory" in (
        capsys.readouterr().err
    )
    (tmp_path / "file.txt").write_text("")
    assert main(["graph", str(tmp_path / "file.txt")]) == 2
    assert "is a file" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--collapse", "0"], "must be a positive depth"),
        (["--collapse", "deep"], "must be a positive depth"),
        (["--format", "png,svg"], "formats are png, graphml and dot"),
    ],
)
def test_bad_options_are_usage_errors(
    option: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["graph", "scmnet.toys.modules:ErasureNet", *option])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


# -- models a user brings -----------------------------------------------------------------------


def test_outputs_that_are_not_tensors_are_noted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["graph", "tests.zoo:GPT", "--inputs", "long:2x6", "--format", "graphml"]
    assert main([*args, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "  note: output[1] is None, not a tensor: it is not a variable" in out.splitlines()
    assert "lm_head" in nx.read_graphml(tmp_path / "graph.graphml")


def test_torch_chatter_is_shown_only_with_verbose(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    args = ["graph", "tests.zoo:GatedNet", "--inputs", "float:2x4", "--out", str(tmp_path)]
    assert main(args) == 2
    out, err = capfd.readouterr()
    assert err.startswith("scmnet graph: error: could not trace GatedNet.")
    assert len(err.splitlines()) == 1
    assert out == ""
    assert main([*args, "--verbose"]) == 2
    verbose = capfd.readouterr().err.splitlines()
    assert verbose[1].startswith("what torch said while tracing (")
    assert len(verbose) > 3
