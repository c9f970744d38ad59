"""Whether a model's weight files are whole, read from their headers (nothing loads).

A file cut short by an interrupted download or copy, or garbled, fails deep inside
transformers with an error that does not name it. These checks read only each file's header:

* ``*.safetensors`` -- an 8-byte header length, a JSON header, then the tensors' bytes up to
  the largest end offset the header gives;
* ``pytorch_model*.bin`` -- a whole zip archive, as ``torch.save`` writes (or a legacy pickle);
* ``*.gguf`` -- the magic bytes ``GGUF``, then the metadata and the tensor table, up to the end
  of the last tensor;
* ``*.index.json`` -- every shard it lists exists.

Examples
--------
>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> _ = (folder / "model.gguf").write_bytes(b"GGML")
>>> try:
...     check_gguf(folder / "model.gguf", "--model 'm'")
... except InvalidArgument as e:
...     print(str(e).split(";")[0])
--model 'm': the weight file model.gguf looks truncated or corrupt (it does not start with the \
bytes GGUF)
"""

from __future__ import annotations

import json
import mmap
import zipfile
from pathlib import Path

from scmnet.errors import InvalidArgument, format_names

__all__ = ["RESAVE", "check_gguf", "check_weight_files"]

RESAVE = "re-download it, or save the model again with model.save_pretrained(dir)"
"""The fix for a truncated or corrupt weight file."""


def check_weight_files(folder: Path, where: str) -> tuple[Path, ...]:
    """The weight files of a model directory, each checked from its header (not loaded).

    ``*.safetensors`` files must be as long as their header says; ``pytorch_model*.bin`` files
    must be whole zip archives (or legacy pickles); every shard an index file lists must exist.

    Raises
    ------
    InvalidArgument
        If the folder has no weight files, misses a listed shard, or a file is truncated or
        corrupt; the message names the file.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "model.safetensors").write_bytes(b"\\x40" + bytes(7) + b"{}")
    >>> try:
    ...     check_weight_files(folder, "--model 'm'")
    ... except InvalidArgument as e:
    ...     print(str(e).split(";")[0])
    --model 'm': the weight file model.safetensors looks truncated or corrupt (its header is 64 \
bytes long but only 2 follow)
    """
    for index in sorted(folder.glob("*.index.json")):
        try:
            shards = set(json.loads(index.read_text())["weight_map"].values())
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise _corrupt(where, index, f"it is not a weight index: {type(e).__name__}") from e
        missing = sorted(s for s in shards if not (folder / s).is_file())
        if missing:
            raise InvalidArgument(
                f"{where}: {index.name} lists weight files that are missing "
                f"({format_names(missing, limit=5)}); re-download the model, or save it again "
                f"with model.save_pretrained(dir)"
            )
    weights = sorted([*folder.glob("*.safetensors"), *folder.glob("pytorch_model*.bin")])
    if not weights:
        raise InvalidArgument(
            f"{where} has a config.json but no weights (model.safetensors or pytorch_model.bin); "
            f"save them there with model.save_pretrained(dir)"
        )
    for file in weights:
        reason = _safetensors_problem(file) if file.suffix == ".safetensors" else _bin_problem(file)
        if reason is not None:
            raise _corrupt(where, file, reason)
    return tuple(weights)


def _corrupt(where: str, file: Path, reason: str) -> InvalidArgument:
    return InvalidArgument(
        f"{where}: the weight file {file.name} looks truncated or corrupt ({reason}); {RESAVE}"
    )


def _safetensors_problem(file: Path) -> str | None:
    """Why ``file`` is not a whole safetensors file: an 8-byte header length, a JSON header,
    then the tensors' bytes up to the largest end offset the header gives."""
    size = file.stat().st_size
    with file.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return f"it has {size} bytes, fewer than the 8 of a header length"
        length = int.from_bytes(head, "little")
        if length > size - 8:
            return f"its header is {length} bytes long but only {size - 8} follow"
        try:
            header = json.loads(f.read(length))
            ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as e:
            return f"its header is not a safetensors header: {type(e).__name__}"
    expected = 8 + length + max(ends, default=0)
    if size < expected:
        return f"it has {size} bytes; its header describes {expected}"
    return None


def _bin_problem(file: Path) -> str | None:
    """Why ``file`` is not a whole ``torch.save`` file (a zip archive, or a legacy pickle)."""
    if zipfile.is_zipfile(file):
        return None
    with file.open("rb") as f:
        first = f.read(1)
    if first == b"\x80":  # a pickle (torch's legacy format): only loading can check it
        return None
    return "it is neither a whole zip archive, as torch.save writes, nor a legacy pickle"


# -- GGUF ---------------------------------------------------------------------------------------


class _Truncated(Exception):
    pass


_GGUF_SCALARS = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
"""The byte sizes of GGUF's scalar metadata types (8 is a string, 9 an array)."""


class _GgufReader:
    """Reads the header of a GGUF file (little-endian) from a memory map."""

    def __init__(self, data: mmap.mmap | bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise _Truncated
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return bytes(chunk)

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "little")

    def string(self) -> bytes:
        return self.take(self.uint(8))

    def value(self, kind: int) -> object:
        if kind == 8:
            return self.string().decode("utf-8", "replace")
        if kind == 9:
            item, count = self.uint(4), self.uint(8)
            size = _GGUF_SCALARS.get(item, 8)
            if count * size > len(self.data) - self.pos:
                raise _Truncated
            if item in _GGUF_SCALARS:
                self.take(count * size)
            else:
                for _ in range(count):
                    self.value(item)
            return None
        if kind not in _GGUF_SCALARS:
            raise ValueError(f"unknown metadata type {kind}")
        return self.uint(_GGUF_SCALARS[kind])


def check_gguf(file: Path, where: str) -> dict[str, object]:
    """The metadata of a GGUF file (strings and integers; arrays as ``None``), after checking
    that the file is as long as its tensor table says."""
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    size = file.stat().st_size
    with file.open("rb") as f:
        if f.read(4) != b"GGUF":
            raise _corrupt(where, file, "it does not start with the bytes GGUF")
    metadata: dict[str, object] = {}
    try:
        with file.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            reader = _GgufReader(data)
            reader.take(4)
            version = reader.uint(4)
            if version not in (2, 3):
                raise _corrupt(where, file, f"GGUF version {version}; transformers reads 2 and 3")
            n_tensors, n_values = reader.uint(8), reader.uint(8)
            for _ in range(n_values):
                key = reader.string().decode("utf-8", "replace")
                metadata[key] = reader.value(reader.uint(4))
            end = 0
            for _ in range(n_tensors):
                reader.string()
                dims = [reader.uint(8) for _ in range(reader.uint(4))]
                block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(reader.uint(4))]
                elements = 1
                for d in dims:
                    elements *= d
                end = max(end, reader.uint(8) + elements // block * type_size)
            align = metadata.get("general.alignment", 32)
            align = align if isinstance(align, int) and align > 0 else 32
            expected = -(-reader.pos // align) * align + end
    except InvalidArgument:
        raise
    except _Truncated:
        raise _corrupt(where, file, f"its header runs past its end, at {size} bytes") from None
    except (ValueError, KeyError, OverflowError) as e:
        raise _corrupt(where, file, f"its header is not a GGUF header: {e}") from e
    if size < expected:
        raise _corrupt(where, file, f"it has {size} bytes; its tensor table describes {expected}")
    return metadata
