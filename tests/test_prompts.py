"""Prompt sets: the dataclasses, the built-in factual-recall set, and the file loaders.

Property tests first (a JSONL round trip keeps every prompt and the content hash), then
examples of each format, then the error messages for malformed files.
"""

from __future__ import annotations

import dataclasses
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import scmnet as sn
from scmnet.adapters.transformer.prompts import (
    FORMATS,
    Prompt,
    PromptSet,
    builtin_prompts,
    load_prompts,
)

# --- strategies (local: only this module builds prompts) -----------------------------------------

_words = st.text(
    alphabet=st.characters(categories=("L", "N"), include_characters="'-"), min_size=1, max_size=8
)


@st.composite
def prompts(draw: st.DrawFn) -> Prompt:
    """A random prompt that follows the conventions (text without trailing space, ' target')."""
    text = " ".join(draw(st.lists(_words, min_size=1, max_size=6)))
    target = draw(st.none() | _words.map(lambda w: " " + w))
    relation = draw(st.sampled_from(["", "capital", "plural", "P36"]))
    subject = draw(st.sampled_from(["", text.split(" ")[0]]))
    return Prompt(text, target, subject, relation)


prompt_sets = st.lists(prompts(), max_size=8).map(lambda ps: PromptSet(tuple(ps), name="random"))


def _jsonl(rows: list[Any]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


# --- properties ---------------------------------------------------------------------------------


@given(s=prompt_sets)
def test_jsonl_round_trip_keeps_prompts_and_hash(s: PromptSet, tmp_path_factory: Any) -> None:
    if not len(s):
        return
    path = tmp_path_factory.mktemp("rt") / "set.jsonl"
    rows = [
        {"prompt": p.text, "target": p.target, "subject": p.subject, "relation": p.relation}
        for p in s
    ]
    path.write_text(_jsonl(rows), encoding="utf-8")
    loaded = load_prompts(path)
    assert loaded.prompts == s.prompts
    assert loaded.content_hash == s.content_hash
    assert loaded.name == "set.jsonl"


@given(s=prompt_sets)
def test_filter_and_limit_partition_without_mutating(s: PromptSet) -> None:
    before = s.prompts
    with_target = s.filter(has_target=True)
    without = s.filter(has_target=False)
    assert len(with_target) + len(without) == len(s)
    assert all(p.target is not None for p in with_target)
    assert s.limit(3).prompts == s.prompts[:3]
    assert s.filter(predicate=lambda p: True).prompts == s.prompts
    for r in s.relations:
        assert all(p.relation == r for p in s.filter(relations=r))
    assert s.prompts == before


@given(s=prompt_sets)
def test_content_hash_ignores_name_and_source_but_not_content(s: PromptSet) -> None:
    renamed = PromptSet(
        tuple(dataclasses.replace(p, source="elsewhere") for p in s.prompts), name="other"
    )
    assert renamed.content_hash == s.content_hash
    assert re.fullmatch(r"[0-9a-f]{64}", s.content_hash)
    if len(s):
        changed = dataclasses.replace(
            s[0], target=" changed" if s[0].target != " changed" else None
        )
        assert PromptSet((changed, *s.prompts[1:])).content_hash != s.content_hash


# --- the dataclasses ----------------------------------------------------------------------------


def test_prompt_fields_and_immutability() -> None:
    p = Prompt("The capital of France is the city of", " Paris", "France", "capital")
    assert (p.text, p.target, p.subject, p.relation, p.source) == (
        "The capital of France is the city of",
        " Paris",
        "France",
        "capital",
        None,
    )
    assert p == Prompt("The capital of France is the city of", " Paris", "France", "capital")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.target = " Lyon"  # type: ignore[misc]
    bare = Prompt("The sky is", None)
    assert (bare.target, bare.subject, bare.relation) == (None, "", "")


def test_prompt_set_protocol() -> None:
    a = Prompt("One mouse, two", " mice", "mouse", "plural")
    b = Prompt("The capital of Peru is the city of", " Lima", "Peru", "capital")
    c = Prompt("One goose, two", " geese", "goose", "plural")
    d = Prompt("The weather today is", None)
    s = PromptSet((a, b, c, d), name="mini")
    assert len(s) == 4
    assert list(s) == [a, b, c, d]
    assert s[1] is b
    assert s[-1] is d
    assert s.relations == ("plural", "capital")
    assert repr(s) == "PromptSet(name='mini', prompts=4, relations=2)"
    plural = s.filter(relations="plural")
    assert plural.prompts == (a, c)
    assert plural.name == "mini[relation=plural]"
    assert s.filter(relations=["capital", "plural"]).prompts == (a, b, c)
    assert s.filter(has_target=False).prompts == (d,)
    assert s.filter(predicate=lambda p: p.text.startswith("One"), name="ones").name == "ones"
    assert s.limit(2).prompts == (a, b)
    assert s.limit(2).name == "mini[:2]"
    assert s.limit(10).prompts == s.prompts
    assert s.limit(0).prompts == ()
    assert PromptSet([a, b]).prompts == (a, b)  # type: ignore[arg-type]
    assert s.prompts == (a, b, c, d)


# --- the built-in set ---------------------------------------------------------------------------


def test_builtin_size_and_relations() -> None:
    facts = builtin_prompts()
    assert facts.name == "builtin:facts"
    assert len(facts) >= 400
    assert len(facts.relations) >= 12
    counts = {r: len(facts.filter(relations=r)) for r in facts.relations}
    assert min(counts.values()) >= 7
    assert sum(counts.values()) == len(facts)


def test_builtin_records_follow_the_conventions() -> None:
    facts = builtin_prompts()
    texts = [p.text for p in facts]
    assert len(set(texts)) == len(texts), "duplicate prompts"
    assert len({(p.subject, p.relation) for p in facts}) == len(facts)
    for p in facts:
        assert p.text.strip(), p
        assert p.text == p.text.strip(), p
        assert p.target is not None, p
        assert p.target.startswith(" "), p
        assert not p.target[1].isspace(), p
        assert p.target == p.target.rstrip(), p
        assert p.subject, p
        assert p.subject in p.text, p
        assert p.relation, p


def test_builtin_matches_its_file_and_is_stable() -> None:
    path = resources.files("scmnet.adapters.transformer") / "data" / "facts.jsonl"
    with resources.as_file(path) as file:
        loaded = load_prompts(file)
    facts = builtin_prompts()
    assert loaded.prompts == facts.prompts
    assert builtin_prompts() is facts
    assert facts.content_hash == loaded.content_hash


# --- loaders ------------------------------------------------------------------------------------

ROME = [
    {
        "known_id": 0,
        "subject": "Lake Zorbu",
        "attribute": "Norway",
        "template": "{} is located in the country of",
        "prediction": " Norway, in the",
        "prompt": "Lake Zorbu is located in the country of",
        "relation_id": "P17",
    },
    {
        "known_id": 7,
        "subject": "Mira Kessel",
        "attribute": "violin",
        "template": "{} plays the",
        "prediction": " piano",
        "prompt": "Mira Kessel plays the",
        "relation_id": "P1303",
    },
]

COUNTERFACT = [
    {
        "case_id": 3,
        "pararel_idx": 11,
        "requested_rewrite": {
            "prompt": "The mother tongue of {} is",
            "relation_id": "P103",
            "target_new": {"str": "Dutch", "id": "Q7411"},
            "target_true": {"str": "Finnish", "id": "Q1412"},
            "subject": "Aino Halme",
        },
        "paraphrase_prompts": [],
    },
    {
        "case_id": 4,
        "requested_rewrite": {
            "prompt": "{}, which is produced by",
            "relation_id": "P176",
            "target_new": {"str": "Honda"},
            "target_true": {"str": "Ikaros Motors"},
            "subject": "Starline 7",
        },
    },
]


def test_rome_known_facts(tmp_path: Path) -> None:
    path = tmp_path / "known_1000.json"
    path.write_text(json.dumps(ROME), encoding="utf-8")
    s = load_prompts(path)
    assert s.name == "known_1000.json"
    assert s[0] == Prompt(
        "Lake Zorbu is located in the country of", " Norway", "Lake Zorbu", "P17", "known_id=0"
    )
    assert s[1].target == " violin"
    assert s.relations == ("P17", "P1303")
    other = tmp_path / "facts.data"
    other.write_text(json.dumps(ROME, indent=2), encoding="utf-8")
    assert load_prompts(other).prompts == s.prompts
    assert load_prompts(other, "rome", name="known").name == "known"


def test_counterfact(tmp_path: Path) -> None:
    path = tmp_path / "counterfact.json"
    path.write_text(json.dumps(COUNTERFACT), encoding="utf-8")
    s = load_prompts(path)
    assert s[0] == Prompt(
        "The mother tongue of Aino Halme is", " Finnish", "Aino Halme", "P103", "case_id=3"
    )
    assert s[1].text == "Starline 7, which is produced by"
    assert s[1].target == " Ikaros Motors"
    assert load_prompts(path, format="counterfact").prompts == s.prompts


def test_jsonl(tmp_path: Path) -> None:
    rows = [
        {"prompt": "The capital of Chile is the city of", "target": " Santiago", "relation": "cap"},
        {"text": "The opposite of up is", "target": "down", "subject": "up", "source": "mine:2"},
        {"prompt": "Once upon a time", "target": None},
    ]
    path = tmp_path / "mine.jsonl"
    path.write_text(_jsonl(rows[:2]) + "\n  \n" + _jsonl(rows[2:]), encoding="utf-8")
    s = load_prompts(path)
    assert [p.text for p in s] == [
        "The capital of Chile is the city of",
        "The opposite of up is",
        "Once upon a time",
    ]
    assert [p.target for p in s] == [" Santiago", " down", None]
    assert (s[0].relation, s[0].subject) == ("cap", "")
    assert (s[1].subject, s[1].source) == ("up", "mine:2")
    sniffed = tmp_path / "mine.data"
    sniffed.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    assert load_prompts(sniffed).prompts == s.prompts


def test_text(tmp_path: Path) -> None:
    path = tmp_path / "mine.txt"
    path.write_text(
        "# prompts for a quick look\n"
        "The capital of Japan is the city of\tTokyo\r\n"
        "\n"
        "The opposite of hot is \t cold \n"
        "The weather today is\n",
        encoding="utf-8",
    )
    s = load_prompts(path)
    assert [(p.text, p.target) for p in s] == [
        ("The capital of Japan is the city of", " Tokyo"),
        ("The opposite of hot is", " cold"),
        ("The weather today is", None),
    ]
    assert s.relations == ()
    assert len(s.filter(has_target=True)) == 2
    other = tmp_path / "mine.prompts"
    other.write_text("Roses are\tred\n", encoding="utf-8")
    assert load_prompts(other)[0].target == " red"
    assert load_prompts(path, format="text").prompts == s.prompts


def test_formats_constant() -> None:
    assert FORMATS == ("rome", "counterfact", "jsonl", "text")


# --- errors -------------------------------------------------------------------------------------


def _write(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return path


def test_prompt_errors() -> None:
    with pytest.raises(sn.InvalidDataset, match=r"ends with whitespace.*' Paris'"):
        Prompt("The capital of France is ", " Paris")
    with pytest.raises(sn.InvalidDataset, match="non-empty text"):
        Prompt("  ", " Paris")
    with pytest.raises(sn.InvalidDataset, match=r"non-empty string \(or None"):
        Prompt("The capital of France is", " ")
    with pytest.raises(sn.InvalidDataset, match=r"the relation of .* must be a string"):
        Prompt("The capital of France is", " Paris", "France", 36)  # type: ignore[arg-type]
    with pytest.raises(sn.InvalidArgument, match=r"element 1 of the prompts of 'x'"):
        PromptSet((Prompt("a", " b"), "c"), name="x")  # type: ignore[arg-type]


def test_prompt_set_argument_errors() -> None:
    facts = builtin_prompts()
    with pytest.raises(sn.InvalidArgument, match=r"no relation 'capitals'.*did you mean"):
        facts.filter(relations="capitals")
    with pytest.raises(sn.InvalidArgument, match="non-negative integer, got -1"):
        facts.limit(-1)
    with pytest.raises(sn.InvalidArgument, match="non-negative integer"):
        facts.limit(2.5)  # type: ignore[arg-type]


def test_jsonl_missing_field(tmp_path: Path) -> None:
    good = {"prompt": "The capital of Peru is", "target": " Lima"}
    path = _write(tmp_path, "p.jsonl", _jsonl([good]) + "\n" + _jsonl([{"prompt": "Hi there"}]))
    with pytest.raises(sn.InvalidDataset) as info:
        load_prompts(path)
    message = str(info.value)
    assert str(path) in message
    assert "record 2 (line 3)" in message
    assert "missing field 'target'" in message
    assert "a string 'prompt' (or 'text')" in message


def test_jsonl_wrong_type(tmp_path: Path) -> None:
    path = _write(tmp_path, "p.jsonl", _jsonl([{"prompt": "Two plus two is", "target": 4}]))
    with pytest.raises(
        sn.InvalidDataset,
        match=r"p\.jsonl: record 1 \(line 1\): field 'target' must be a string or null, got a "
        r"number 4",
    ):
        load_prompts(path)
    path = _write(tmp_path, "q.jsonl", _jsonl([{"prompt": ["a"], "target": " b"}]))
    with pytest.raises(sn.InvalidDataset, match=r"field 'prompt' must be a string, got a list"):
        load_prompts(path)
    path = _write(tmp_path, "r.jsonl", _jsonl([{"prompt": "a", "target": " b", "relation": 3}]))
    with pytest.raises(sn.InvalidDataset, match=r"field 'relation' must be a string"):
        load_prompts(path)
    path = _write(tmp_path, "s.jsonl", _jsonl([{"prompt": "a", "text": "a", "target": " b"}]))
    with pytest.raises(sn.InvalidDataset, match="both 'prompt' and 'text'"):
        load_prompts(path)
    path = _write(tmp_path, "t.jsonl", _jsonl([["a", " b"]]))
    with pytest.raises(sn.InvalidDataset, match=r"expected a JSON object, got a list"):
        load_prompts(path)


def test_jsonl_bad_json_line(tmp_path: Path) -> None:
    good = _jsonl([{"prompt": "The capital of Peru is", "target": " Lima"}])
    path = _write(tmp_path, "p.jsonl", good + '{"prompt": "Oops", "target": " x"\n')
    with pytest.raises(sn.InvalidDataset, match=r"p\.jsonl: record 2 \(line 2\): bad JSON at"):
        load_prompts(path)


def test_rome_errors(tmp_path: Path) -> None:
    broken = [dict(ROME[0]), {k: v for k, v in ROME[1].items() if k != "attribute"}]
    path = _write(tmp_path, "known.json", json.dumps(broken))
    with pytest.raises(
        sn.InvalidDataset, match=r"known\.json: record 2: missing field 'attribute'; a ROME"
    ):
        load_prompts(path)
    bad_type = [dict(ROME[0], subject=17)]
    path = _write(tmp_path, "known2.json", json.dumps(bad_type))
    with pytest.raises(sn.InvalidDataset, match=r"record 1: field 'subject' must be a string"):
        load_prompts(path)
    path = _write(tmp_path, "known3.json", json.dumps([ROME[0], "not a record"]))
    with pytest.raises(sn.InvalidDataset, match=r"record 2: expected a JSON object"):
        load_prompts(path, "rome")


def test_counterfact_errors(tmp_path: Path) -> None:
    record = json.loads(json.dumps(COUNTERFACT[0]))
    record["requested_rewrite"]["prompt"] = "The mother tongue of Aino Halme is"
    path = _write(tmp_path, "cf.json", json.dumps([COUNTERFACT[1], record]))
    with pytest.raises(sn.InvalidDataset) as info:
        load_prompts(path)
    message = str(info.value)
    assert "cf.json: record 2" in message
    assert "'requested_rewrite.prompt'" in message
    assert "exactly one" in message
    assert "'Aino Halme'" in message
    record = json.loads(json.dumps(COUNTERFACT[0]))
    del record["requested_rewrite"]["target_true"]["str"]
    path = _write(tmp_path, "cf2.json", json.dumps([record]))
    with pytest.raises(sn.InvalidDataset, match=r"missing field 'requested_rewrite\.target_true"):
        load_prompts(path)
    path = _write(tmp_path, "cf3.json", json.dumps([{"requested_rewrite": "x"}]))
    with pytest.raises(sn.InvalidDataset, match=r"an object is needed in field 'requested_rew"):
        load_prompts(path)
    path = _write(tmp_path, "cf4.json", json.dumps([{"case_id": 1}]))
    with pytest.raises(sn.InvalidDataset, match=r"missing field 'requested_rewrite'"):
        load_prompts(path, format="counterfact")


def test_text_errors(tmp_path: Path) -> None:
    path = _write(tmp_path, "p.txt", "The capital of Peru is\tLima\nToo\tmany\ttabs\n")
    with pytest.raises(sn.InvalidDataset, match=r"p\.txt: record 2 \(line 2\): 2 tabs"):
        load_prompts(path)
    path = _write(tmp_path, "q.txt", "# header\n\nThe capital of Peru is\t \n")
    with pytest.raises(sn.InvalidDataset, match=r"record 1 \(line 3\): the target after the tab"):
        load_prompts(path)
    path = _write(tmp_path, "r.txt", "\tLima\n")
    with pytest.raises(sn.InvalidDataset, match=r"record 1 \(line 1\): the prompt before the tab"):
        load_prompts(path)


def test_file_level_errors(tmp_path: Path) -> None:
    with pytest.raises(sn.InvalidDataset, match="no prompt file at"):
        load_prompts(tmp_path / "missing.jsonl")
    with pytest.raises(sn.InvalidDataset, match="holds no prompts"):
        load_prompts(_write(tmp_path, "empty.txt", "# nothing\n\n"))
    with pytest.raises(sn.InvalidDataset, match="holds no prompts"):
        load_prompts(_write(tmp_path, "empty.json", "[]"))
    with pytest.raises(sn.InvalidDataset, match=r"record 1: a JSON list of prompts must hold"):
        load_prompts(_write(tmp_path, "other.json", json.dumps([{"question": "?"}])))
    with pytest.raises(sn.InvalidDataset, match=r"is not JSON"):
        load_prompts(_write(tmp_path, "plain.json", "The capital of Peru is\tLima\n"))
    with pytest.raises(sn.InvalidDataset, match=r"bad JSON at line 1"):
        load_prompts(_write(tmp_path, "broken.json", '[{"prompt": "a",'))
    with pytest.raises(sn.InvalidDataset, match=r"expected a JSON list of records, got a dict"):
        load_prompts(_write(tmp_path, "obj.data", '{"prompt": "a"}'), format="rome")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("Caf\xe9 is\tgood\n".encode("latin-1"))
    with pytest.raises(sn.InvalidDataset, match="not UTF-8"):
        load_prompts(latin)
    with pytest.raises(sn.InvalidArgument, match=r"unknown prompt format 'jsnl' \(did you mean"):
        load_prompts(latin, format="jsnl")
