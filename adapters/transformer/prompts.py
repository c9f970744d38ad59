"""Factual-recall prompt sets: the built-in set, and loaders for the common file formats.

The Hydra-effect analysis (Section 2.2 of the paper) runs a language model on prompts that stop
right before the object of a fact -- "The capital of France is the city of" -- and studies the
layers that produce the model's next token. The paper used the 1,209 "known facts" of ROME
(Meng et al., 2022), built from CounterFact. Neither ships on PyPI, so scmnet ships its own set,
written for the project (:func:`builtin_prompts`), and reads those formats
(:func:`load_prompts`).

Conventions
-----------
* :attr:`Prompt.text` ends right before the object, with no trailing whitespace.
* :attr:`Prompt.target` is the object **as it continues the text, with its leading space**:
  ``" Paris"``, not ``"Paris"``. Byte-level BPE tokenizers (SmolLM2, Llama 3, GPT-2, ...) attach
  the space to the following word, so tokenising ``target`` on its own gives the tokens the model
  sees after ``text``; the analysis compares the model's top-1 next token with the **first**
  token of ``target``. Loaders add the space where a file gives the bare word.
* ``target=None`` means "no expected object": the analysis then takes the model's own top-1
  prediction as the token i to explain and keeps the prompt whatever that token is. Only plain
  text files (a line without a tab) and JSONL records with ``"target": null`` produce it.
* :attr:`Prompt.subject` and :attr:`Prompt.relation` are ``""`` where a file does not give them.

Formats read by :func:`load_prompts`
------------------------------------
==============  ===========================================================================
``rome``        ROME's known facts: a JSON list of objects with ``known_id``, ``subject``,
                ``attribute``, ``template``, ``prediction``, ``prompt``, ``relation_id``;
                text = ``prompt``, target = ``" " + attribute``, relation = ``relation_id``.
``counterfact`` CounterFact: a JSON list of objects whose ``requested_rewrite`` holds
                ``prompt`` (with ``{}`` where the subject goes), ``subject``,
                ``target_true.str`` and ``relation_id``.
``jsonl``       JSON Lines: one object per line with ``prompt`` (or ``text``) and ``target``
                (a string, or ``null``); ``subject``, ``relation``, ``source`` optional.
``text``        One prompt per line, optionally ``prompt<TAB>target``; blank lines and lines
                starting with ``#`` are skipped.
==============  ===========================================================================

Examples
--------
>>> from scmnet.adapters.transformer.prompts import Prompt, PromptSet, builtin_prompts
>>> facts = builtin_prompts()
>>> facts[0]
Prompt(text='The capital of France is the city of', target=' Paris', subject='France', relation='capital_of_country', source=None)
>>> capitals = facts.filter(relations="capital_of_country").limit(3)
>>> [p.target for p in capitals]
[' Paris', ' Berlin', ' Rome']
>>> capitals.name
'builtin:facts[relation=capital_of_country][:3]'
"""  # noqa: E501

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

from scmnet.errors import InvalidArgument, InvalidDataset, did_you_mean, format_names

__all__ = ["FORMATS", "Prompt", "PromptSet", "builtin_prompts", "load_prompts"]

FORMATS: tuple[str, ...] = ("rome", "counterfact", "jsonl", "text")
"""The file formats :func:`load_prompts` reads."""

BUILTIN_SOURCE = "builtin"
"""The ``source`` of the :class:`PromptSet` of :func:`builtin_prompts`."""

_BUILTIN_FILE = "facts.jsonl"
_REQUIRED: Any = object()

_EXPECTED = {
    "rome": (
        "a ROME known-facts record is an object with the string fields 'prompt', 'attribute', "
        "'subject' and 'relation_id' (and usually 'known_id', 'template', 'prediction')"
    ),
    "counterfact": (
        "a CounterFact record is an object with 'requested_rewrite': {'prompt': a string with "
        "'{}' where the subject goes, 'subject': a string, 'target_true': {'str': a string}, "
        "'relation_id': a string}"
    ),
    "jsonl": (
        "each record must be a JSON object with a string 'prompt' (or 'text') and a 'target' "
        "(a string, or null to use the model's own prediction); 'subject', 'relation' and "
        "'source' are optional strings"
    ),
    "text": "each line is a prompt, or a prompt, one tab and the expected object",
}


@dataclass(frozen=True)
class Prompt:
    """One factual-recall prompt and the object it should be completed with.

    Parameters
    ----------
    text : str
        The prompt, ending right before the object, without trailing whitespace.
    target : str or None
        The expected object as it continues ``text``, with its leading space (``" Paris"``);
        the analysis compares the model's top-1 next token with its first token. ``None``
        means no expected object: the model's own top-1 prediction is analysed.
    subject : str, optional
        The subject of the fact as written in ``text`` (``"France"``); ``""`` if unknown.
    relation : str, optional
        A label of the relation (``"capital_of_country"``, or ROME's ``"P36"``); ``""`` if
        unknown.
    source : str, optional
        Where the record came from, to trace a result back to its input (e.g.
        ``"known_id=17"``).

    Raises
    ------
    InvalidDataset
        If ``text`` is empty or ends with whitespace, or ``target`` is empty, or a field is
        not a string.

    Examples
    --------
    >>> p = Prompt("The capital of France is the city of", " Paris", "France", "capital")
    >>> p.text + p.target
    'The capital of France is the city of Paris'
    >>> Prompt("The capital of France is ", "Paris")
    Traceback (most recent call last):
    ...
    scmnet.errors.InvalidDataset: the prompt text 'The capital of France is ' ends with ...
    """

    text: str
    target: str | None
    subject: str = ""
    relation: str = ""
    source: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.text, str) or not self.text.strip():
            raise InvalidDataset(f"a prompt needs a non-empty text, got {self.text!r}")
        if self.text != self.text.rstrip():
            raise InvalidDataset(
                f"the prompt text {self.text!r} ends with whitespace; end it right before the "
                "object and start the target with the space (' Paris')"
            )
        if self.target is not None and (
            not isinstance(self.target, str) or not self.target.strip()
        ):
            raise InvalidDataset(
                f"the target of {self.text!r} must be a non-empty string (or None to use the "
                f"model's own prediction), got {self.target!r}"
            )
        for name in ("subject", "relation"):
            if not isinstance(getattr(self, name), str):
                raise InvalidDataset(
                    f"the {name} of {self.text!r} must be a string, got {getattr(self, name)!r}"
                )
        if self.source is not None and not isinstance(self.source, str):
            raise InvalidDataset(
                f"the source of {self.text!r} must be a string or None, got {self.source!r}"
            )


@dataclass(frozen=True, repr=False)
class PromptSet:
    """An immutable, ordered set of prompts with a name (for reports).

    Parameters
    ----------
    prompts : tuple of Prompt
        The prompts, in order.
    name : str
        A name for reports and progress output, e.g. ``"builtin:facts"`` or a file name.
    source : str, optional
        Where the set was read from, so that it can be read again (``scmnet hydra
        --from-record``): the resolved path of a prompt file (:func:`load_prompts`), or
        ``"builtin"`` (:func:`builtin_prompts`); ``None`` for a set built or filtered in Python.
        Not compared: two sets with the same prompts are equal wherever they came from.

    Raises
    ------
    InvalidArgument
        If an element of ``prompts`` is not a :class:`Prompt`.

    See Also
    --------
    builtin_prompts, load_prompts

    Examples
    --------
    >>> s = PromptSet(
    ...     (Prompt("Two plus two is", " four", relation="sum"), Prompt("The sky is", None)),
    ...     name="demo",
    ... )
    >>> s, len(s), s.relations
    (PromptSet(name='demo', prompts=2, relations=1), 2, ('sum',))
    >>> builtin_prompts().source, s.source
    ('builtin', None)
    >>> [p.text for p in s.filter(has_target=True)]
    ['Two plus two is']
    >>> s.content_hash[:16]
    '88757e20aaffba78'
    """

    prompts: tuple[Prompt, ...]
    name: str = "prompts"
    source: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        prompts = tuple(self.prompts)
        for i, p in enumerate(prompts):
            if not isinstance(p, Prompt):
                raise InvalidArgument(
                    f"element {i} of the prompts of {self.name!r} is {p!r}, not a Prompt"
                )
        object.__setattr__(self, "prompts", prompts)

    def __len__(self) -> int:
        return len(self.prompts)

    def __iter__(self) -> Iterator[Prompt]:
        return iter(self.prompts)

    def __getitem__(self, index: int) -> Prompt:
        return self.prompts[index]

    def __repr__(self) -> str:
        return (
            f"PromptSet(name={self.name!r}, prompts={len(self)}, relations={len(self.relations)})"
        )

    @cached_property
    def relations(self) -> tuple[str, ...]:
        """The distinct relation labels, in order of first appearance (``""`` left out)."""
        return tuple(dict.fromkeys(p.relation for p in self.prompts if p.relation))

    @cached_property
    def content_hash(self) -> str:
        """SHA-256 (hex) of the prompts' text, target, subject and relation, in order.

        The name and the ``source`` of each prompt are left out: two sets with the same
        prompts hash alike wherever they came from. Record it in a report to pin down the data.
        """
        rows = [[p.text, p.target, p.subject, p.relation] for p in self.prompts]
        blob = json.dumps(rows, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return hashlib.sha256(blob).hexdigest()

    def filter(
        self,
        *,
        relations: str | Iterable[str] | None = None,
        has_target: bool | None = None,
        predicate: Callable[[Prompt], bool] | None = None,
        name: str | None = None,
    ) -> PromptSet:
        """The prompts that pass every given condition, in their order.

        Parameters
        ----------
        relations : str or iterable of str, optional
            Keep the prompts with one of these relation labels.
        has_target : bool, optional
            Keep the prompts with (``True``) or without (``False``) an expected object.
        predicate : callable, optional
            Keep the prompts for which ``predicate(prompt)`` is true.
        name : str, optional
            The name of the result; by default this set's name with the conditions appended.

        Returns
        -------
        PromptSet
            A new set; this one is unchanged.

        Raises
        ------
        InvalidArgument
            If a relation label is not in the set (with close matches).

        Examples
        --------
        >>> facts = builtin_prompts()
        >>> len(facts.filter(relations=["next_day", "previous_day"]))
        14
        >>> facts.filter(relations="capitals")
        Traceback (most recent call last):
        ...
        scmnet.errors.InvalidArgument: no relation 'capitals' in 'builtin:facts' (did you mean ...
        """
        keep = list(self.prompts)
        parts = []
        if relations is not None:
            wanted = [relations] if isinstance(relations, str) else list(relations)
            for r in wanted:
                if r not in self.relations:
                    raise InvalidArgument(
                        f"no relation {r!r} in {self.name!r}{_close(r, self.relations)}; "
                        f"the relations are {format_names(self.relations)}"
                    )
            keep = [p for p in keep if p.relation in wanted]
            parts.append("relation=" + ",".join(wanted))
        if has_target is not None:
            keep = [p for p in keep if (p.target is not None) == has_target]
            parts.append(f"has_target={has_target}")
        if predicate is not None:
            keep = [p for p in keep if predicate(p)]
            parts.append(f"predicate={getattr(predicate, '__name__', 'callable')}")
        if name is None:
            name = self.name + "".join(f"[{part}]" for part in parts)
        return PromptSet(tuple(keep), name=name)

    def limit(self, n: int) -> PromptSet:
        """The first ``n`` prompts (all of them if there are fewer).

        Raises
        ------
        InvalidArgument
            If ``n`` is not a non-negative integer.

        Examples
        --------
        >>> builtin_prompts().limit(2).name
        'builtin:facts[:2]'
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise InvalidArgument(f"limit needs a non-negative integer, got {n!r}")
        return PromptSet(self.prompts[:n], name=f"{self.name}[:{n}]")


@functools.cache
def builtin_prompts() -> PromptSet:
    """The factual-recall prompts shipped with scmnet, written for the project.

    775 prompts over 19 relations: capitals, the country of a city, the main language and the
    continent of a country, currencies, products and software and who makes them, the sport of
    an athlete, the instrument of a musician, the native language of writers and artists,
    chemical symbols, antonyms, plurals, colours of things, landmarks and their city, and the
    day and month after and before another. Facts are chosen to have one answer; spelling is
    American (``" soccer"``, ``" hockey"`` for ice hockey, "color", "aluminum"). Each relation
    uses one template, worded so that a small model can answer: SmolLM2-135M-Instruct predicts
    the first token of the target top-1 for 472 of the 775.

    Returns
    -------
    PromptSet
        Named ``"builtin:facts"``, with source ``"builtin"``; every target starts with a space.

    Examples
    --------
    >>> facts = builtin_prompts()
    >>> len(facts), len(facts.relations)
    (775, 19)
    """
    data = resources.files(__package__ or "scmnet.adapters.transformer") / "data" / _BUILTIN_FILE
    raw = data.read_text(encoding="utf-8")
    return PromptSet(
        tuple(_parse_jsonl(raw, _BUILTIN_FILE)), name="builtin:facts", source=BUILTIN_SOURCE
    )


def load_prompts(
    path: str | os.PathLike[str], format: str | None = None, *, name: str | None = None
) -> PromptSet:
    """Read a prompt file: ROME known facts, CounterFact, JSONL or plain text.

    Parameters
    ----------
    path : str or path
        The file (UTF-8).
    format : {"rome", "counterfact", "jsonl", "text"}, optional
        The format; by default detected: ``.jsonl`` is JSONL, ``.txt`` and ``.tsv`` are text; any
        other file holding a JSON list is ROME or CounterFact (by the fields of its records), one
        starting with ``{`` is JSONL, and the rest is text.
    name : str, optional
        The name of the set; default the file name.

    Returns
    -------
    PromptSet
        The prompts in file order. Targets get a leading space where the file gives the bare
        word, and whitespace at the end of a prompt moves to the start of its target. Its
        ``source`` is the file's resolved path.

    Raises
    ------
    InvalidDataset
        If the file is missing, not UTF-8, holds no prompt, or a record is malformed; the message
        names the file, the record (and line), the bad field and what is expected.
    InvalidArgument
        If ``format`` is not one of :data:`FORMATS`.

    See Also
    --------
    builtin_prompts

    Examples
    --------
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "mine.txt"
    >>> _ = path.write_text("The capital of Japan is\\tTokyo\\nThe sky is\\n", encoding="utf-8")
    >>> [(p.text, p.target) for p in load_prompts(path)]
    [('The capital of Japan is', ' Tokyo'), ('The sky is', None)]
    """
    path = Path(path)
    if format is not None and format not in FORMATS:
        raise InvalidArgument(
            f"unknown prompt format {format!r}{did_you_mean(format, FORMATS)}; "
            f"choose one of {format_names(FORMATS)}, or leave it out to detect it"
        )
    if not path.is_file():
        raise InvalidDataset(
            f"no prompt file at {path}; give a ROME known-facts JSON, CounterFact JSON, "
            "JSONL or text file"
        )
    try:
        raw = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise InvalidDataset(f"{path} is not UTF-8 text ({e}); save it as UTF-8") from e
    kind = format or _detect(path, raw)
    if kind == "jsonl":
        prompts = _parse_jsonl(raw, str(path))
    elif kind == "text":
        prompts = _parse_text(raw, str(path))
    else:
        records = _json_list(raw, str(path), kind)
        parse = _from_rome if kind == "rome" else _from_counterfact
        prompts = [parse(rec, f"{path}: record {i}") for i, rec in enumerate(records, 1)]
    if not prompts:
        raise InvalidDataset(f"{path} holds no prompts; {_EXPECTED[kind]}")
    return PromptSet(
        tuple(prompts), name=name if name is not None else path.name, source=str(path.resolve())
    )


# --- detection and parsing --------------------------------------------------------------------


def _detect(path: Path, raw: str) -> str:
    """The format of a file, from its extension, then its content."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return "jsonl"
    if suffix in (".txt", ".tsv"):
        return "text"
    head = raw.lstrip()[:1]
    if head == "[":
        records = _json_list(raw, str(path), None)
        if not records:
            raise InvalidDataset(f"{path} holds no prompts (an empty JSON list)")
        first = records[0]
        if isinstance(first, dict) and "requested_rewrite" in first:
            return "counterfact"
        if isinstance(first, dict) and ("attribute" in first or "known_id" in first):
            return "rome"
        raise InvalidDataset(
            f"{path}: record 1: a JSON list of prompts must hold ROME known-facts records "
            "(with 'prompt' and 'attribute') or CounterFact records (with "
            f"'requested_rewrite'); got {_shown(first)}. For your own prompts use JSONL: "
            f"{_EXPECTED['jsonl']}"
        )
    if head == "{":
        return "jsonl"
    if suffix == ".json":
        raise InvalidDataset(
            f"{path} is not JSON (it starts with {raw.lstrip()[:20]!r}); a .json prompt file "
            "must hold a list of ROME known-facts or CounterFact records"
        )
    return "text"


def _json_list(raw: str, where: str, kind: str | None) -> list[Any]:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as e:
        raise InvalidDataset(
            f"{where}: bad JSON at line {e.lineno}, column {e.colno} ({e.msg}); "
            f"expected a JSON list of records: {_EXPECTED[kind or 'rome']}"
        ) from e
    if not isinstance(data, list):
        raise InvalidDataset(
            f"{where}: expected a JSON list of records, got a {type(data).__name__}; "
            f"{_EXPECTED[kind or 'rome']}"
        )
    return data


def _parse_jsonl(raw: str, where: str) -> list[Prompt]:
    prompts = []
    record = 0
    for line_no, line in enumerate(raw.split("\n"), 1):
        line = line.strip()
        if not line:
            continue
        record += 1
        at = f"{where}: record {record} (line {line_no})"
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise InvalidDataset(
                f"{at}: bad JSON at column {e.colno} ({e.msg}); {_EXPECTED['jsonl']}"
            ) from e
        prompts.append(_from_record(rec, at))
    return prompts


def _parse_text(raw: str, where: str) -> list[Prompt]:
    prompts = []
    record = 0
    for line_no, line in enumerate(raw.split("\n"), 1):
        line = line.rstrip("\r")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        record += 1
        at = f"{where}: record {record} (line {line_no})"
        parts = line.split("\t")
        if len(parts) > 2:
            raise InvalidDataset(f"{at}: {len(parts) - 1} tabs in {line!r}; {_EXPECTED['text']}")
        text = parts[0]
        target = parts[1] if len(parts) == 2 else None
        if not text.strip():
            raise InvalidDataset(f"{at}: the prompt before the tab is empty; {_EXPECTED['text']}")
        if target is not None and not target.strip():
            raise InvalidDataset(
                f"{at}: the target after the tab is empty; give the expected object, or drop "
                "the tab to analyse the model's own prediction"
            )
        prompts.append(_prompt(text, target, "", "", None, at))
    return prompts


def _from_record(rec: Any, at: str) -> Prompt:
    """A JSONL record: ``prompt`` (or ``text``), ``target``, optional subject/relation/source."""
    expected = _EXPECTED["jsonl"]
    if not isinstance(rec, dict):
        raise InvalidDataset(f"{at}: expected a JSON object, got {_shown(rec)}; {expected}")
    if "prompt" in rec and "text" in rec:
        raise InvalidDataset(f"{at}: has both 'prompt' and 'text'; give one; {expected}")
    key = "text" if "text" in rec else "prompt"
    text = _string(rec, key, at, expected)
    if "target" not in rec:
        raise InvalidDataset(f"{at}: missing field 'target'; {expected}")
    target = rec["target"]
    if target is not None and not isinstance(target, str):
        raise InvalidDataset(
            f"{at}: field 'target' must be a string or null, got {_shown(target)}; {expected}"
        )
    subject = _string(rec, "subject", at, expected, default="")
    relation = _string(rec, "relation", at, expected, default="")
    source = _string(rec, "source", at, expected, default=None)
    return _prompt(text, target, subject, relation, source, at)


def _from_rome(rec: Any, at: str) -> Prompt:
    """A ROME known-facts record: text = ``prompt``, target = ``" " + attribute``."""
    expected = _EXPECTED["rome"]
    if not isinstance(rec, dict):
        raise InvalidDataset(f"{at}: expected a JSON object, got {_shown(rec)}; {expected}")
    text = _string(rec, "prompt", at, expected)
    target = _string(rec, "attribute", at, expected)
    subject = _string(rec, "subject", at, expected)
    relation = _string(rec, "relation_id", at, expected)
    source = f"known_id={rec['known_id']}" if "known_id" in rec else None
    return _prompt(text, target, subject, relation, source, at)


def _from_counterfact(rec: Any, at: str) -> Prompt:
    """A CounterFact record: text = ``prompt`` with ``{}`` filled by ``subject``."""
    expected = _EXPECTED["counterfact"]
    if not isinstance(rec, dict):
        raise InvalidDataset(f"{at}: expected a JSON object, got {_shown(rec)}; {expected}")
    rewrite = rec.get("requested_rewrite")
    if not isinstance(rewrite, dict):
        problem = "missing field" if rewrite is None else "an object is needed in field"
        raise InvalidDataset(f"{at}: {problem} 'requested_rewrite'; {expected}")
    template = _string(rewrite, "prompt", at, expected, prefix="requested_rewrite.")
    subject = _string(rewrite, "subject", at, expected, prefix="requested_rewrite.")
    relation = _string(rewrite, "relation_id", at, expected, prefix="requested_rewrite.")
    true = rewrite.get("target_true")
    if not isinstance(true, dict):
        problem = "missing field" if true is None else "an object is needed in field"
        raise InvalidDataset(f"{at}: {problem} 'requested_rewrite.target_true'; {expected}")
    target = _string(true, "str", at, expected, prefix="requested_rewrite.target_true.")
    if template.count("{}") != 1:
        raise InvalidDataset(
            f"{at}: field 'requested_rewrite.prompt' is {template!r}, which holds "
            f"{template.count('{}')} '{{}}' placeholders; it needs exactly one, where the "
            f"subject {subject!r} goes"
        )
    source = f"case_id={rec['case_id']}" if "case_id" in rec else None
    return _prompt(template.replace("{}", subject), target, subject, relation, source, at)


def _string(
    rec: Mapping[str, Any],
    key: str,
    at: str,
    expected: str,
    *,
    prefix: str = "",
    default: Any = _REQUIRED,
) -> Any:
    """``rec[key]`` if it is a string; ``default`` if it is missing and a default is given."""
    if key not in rec:
        if default is not _REQUIRED:
            return default
        raise InvalidDataset(f"{at}: missing field {prefix + key!r}; {expected}")
    value = rec[key]
    if not isinstance(value, str):
        raise InvalidDataset(
            f"{at}: field {prefix + key!r} must be a string, got {_shown(value)}; {expected}"
        )
    return value


def _prompt(
    text: str, target: str | None, subject: str, relation: str, source: str | None, at: str
) -> Prompt:
    """Build a prompt with the conventions: no space at the end of text, one before target."""
    stripped = text.rstrip()
    if not stripped:
        raise InvalidDataset(f"{at}: the prompt is empty")
    if target is not None:
        target = target.rstrip()
        if not target.strip():
            raise InvalidDataset(f"{at}: the target is empty; give the expected object")
        if not target[0].isspace():
            target = " " + target
    try:
        return Prompt(stripped, target, subject, relation, source)
    except InvalidDataset as e:
        raise InvalidDataset(f"{at}: {e}") from e


def _close(name: str, valid: tuple[str, ...]) -> str:
    """A did-you-mean hint: close spellings, else the labels that contain ``name``."""
    hint = did_you_mean(name, valid)
    if hint:
        return hint
    stem = name.lower().rstrip("s")
    contained = [v for v in valid if stem and stem in v.lower()][:3]
    return f" (did you mean {' or '.join(map(repr, contained))}?)" if contained else ""


def _shown(value: Any) -> str:
    """A short description of a JSON value for an error message."""
    text = json.dumps(value, ensure_ascii=False)
    if len(text) > 60:
        text = text[:57] + "..."
    kind = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else "a number"
    )
    return kind if value is None else f"{kind} {text}"
