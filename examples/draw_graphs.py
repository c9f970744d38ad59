"""Pictures of the erasure and self-repair graphs, before and after do(x = 0) (Figures 5 and 6).

Writes four PNG files to ``--out``:

* ``erasure.png`` and ``self_repair.png``: the causal graphs of the two motifs of Section 3.3
  (eqs. 30-32). Both have u -> x, x -> f, x -> y and f -> y; in self-repair f also reads u.
* ``erasure_do_x0.png`` and ``self_repair_do_x0.png``: each graph before and after the zero
  ablation do(x = 0), drawn as in Figure 5 of the paper: the in-edge u -> x is cut (faded and
  crossed out) and an intervention node sets x from outside.

Run it with::

    python examples/draw_graphs.py [--out DIR]
"""

from __future__ import annotations

import argparse
import struct
import tempfile
from pathlib import Path

import scmnet as sn
from scmnet.draw import draw_graph, draw_intervention


def png_size(path: Path) -> tuple[int, int]:
    """Width and height in pixels, read from the PNG header."""
    width, height = struct.unpack(">II", path.read_bytes()[16:24])
    return width, height


def main(argv: list[str] | None = None) -> None:
    """Draw the pictures and print where they went."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="folder for the PNG files")
    args = parser.parse_args(argv)
    out: Path = args.out or Path(tempfile.mkdtemp(prefix="scmnet-draw-graphs-"))
    out.mkdir(parents=True, exist_ok=True)

    models = {"erasure": sn.toys.erasure(), "self_repair": sn.toys.self_repair()}
    ablation = {"x": 0.0}
    written: list[Path] = []
    for name, model in models.items():
        draw_graph(model, out / f"{name}.png", legend=True)
        written.append(out / f"{name}.png")
        draw_intervention(model, ablation, out / f"{name}_do_x0.png")
        written.append(out / f"{name}_do_x0.png")
        cut = set(model.graph.edges) - set(sn.do(model, ablation).graph.edges)
        print(f"{model.name}: edges {', '.join(f'{u}->{v}' for u, v in model.graph.edges)}")
        print(f"  do(x = 0.0) cuts {', '.join(f'{u}->{v}' for u, v in sorted(cut))}")

    print()
    for path in written:
        width, height = png_size(path)
        print(f"wrote {path} ({width} x {height} pixels, {path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
