"""The README's code runs as written, and its numbers are the ones the API returns."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert blocks
    for block in blocks:
        namespace: dict[str, object] = {}
        exec(compile(block, str(README), "exec"), namespace)
        # The commented results of the three effect calls hold.
        for line in block.splitlines():
            match = re.match(r"(sn\.\w+_effect\(.*\))\s+#\s+(-?\d+\.\d+)$", line)
            if match:
                assert eval(match.group(1), namespace) == float(match.group(2)), line
