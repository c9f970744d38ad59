"""The Hydra sweep over a prompt set, resumable.

:func:`run_sweep` does what Sections 2 and 4 of the paper do on a data set:

1. a clean pass over every prompt: the top-1 token i at the final position; the prompts whose
   top-1 token is the expected object are kept (as the paper does); their final-position
   contributions are recorded (:func:`~.causal.recorded_readings`) for the mean and resample
   values, :func:`scmnet.mean` and :func:`scmnet.patch` rules that read them;
2. for every kept prompt, :func:`~.measures.measure_prompt`: the clean readouts and
   every ablation of every layer as the rows of one :func:`scmnet.effect_table` query on the
   traced model, saved at once to ``measures/NNNNN.npz`` in the output directory.

An interrupted sweep resumes where it stopped: prompts whose file exists are loaded, not
recomputed. The settings are written to ``settings.json`` first, and a directory holding a
sweep with other settings is refused (with the differing setting named), so that results of
different settings are never mixed. A damaged ``settings.json`` or ``measures/NNNNN.npz`` (cut
short by a full disk, edited by hand) is a :class:`~.output_folder.DamagedFile` naming the file
and what to delete, never a raw numpy or json error.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

import torch

import scmnet as sn
from scmnet.errors import InvalidDataset, InvalidIntervention, ScmnetError
from scmnet.heap import frozen_heap

from .ablations import Ablation, AblationKind, donors, noised_contributions
from .causal import final_readings, hydra_model, recorded_readings
from .identity import model_identity, package_versions
from .lm import LanguageModel
from .measures import Draw, PromptMeasures, measure_prompt
from .output_folder import DamagedFile, atomic, write_atomic
from .precision import DTYPES, dtype_name
from .prompts import PromptSet

__all__ = [
    "AblationValues",
    "CleanRun",
    "DamagedFile",
    "SettingsMismatch",
    "SweepSettings",
    "check_draws",
    "check_lengths",
    "check_resume",
    "clean_pass",
    "compute_prompt",
    "differences",
    "each_prompt",
    "measures_path",
    "prompt_draws",
    "read_settings",
    "run_sweep",
    "saved",
    "target_token",
]

T = TypeVar("T")
Progress = Callable[[Iterable[T], str, int], Iterable[T]]
Shard = Callable[["CleanRun", list[int]], Iterable[int]]
"""Computes a sweep's missing prompts elsewhere: ``shard(clean, missing)`` yields each as done."""


class SettingsMismatch(ScmnetError):
    """An output directory that holds a sweep made with other settings."""


@dataclass(frozen=True)
class SweepSettings:
    """Everything that determines a sweep's numbers (recorded in ``settings.json``).

    ``model_hash`` is the identity of the weights and config computed with (not their path:
    :func:`~.identity.model_identity`) and ``versions`` those of the packages that compute, so
    that a resume never mixes two models, or two versions, in one report; ``dtype`` is the
    dtype the model computed in (``scmnet.adapters.transformer.precision``), compared on resume
    and taken by a re-run from the record like the rest. ``prompts_source`` is
    where the prompts were read from (:attr:`~.prompts.PromptSet.source`: a resolved file path,
    ``"builtin"``, or ``""`` for a set built in Python), so that the sweep can be re-run from its
    record (``scmnet hydra --from-record``); a resume does not compare it (``prompts_hash``
    pins the prompts themselves), and a ``settings.json`` written before it existed lacks it.

    Examples
    --------
    >>> from scmnet.adapters.transformer.prompts import builtin_prompts
    >>> planned = SweepSettings.planned("my-model", builtin_prompts(), Ablation(), limit=20)
    >>> planned.prompts, planned.prompts_source, planned.ablation, planned.patches
    ('builtin:facts', 'builtin', 'resample', 15)
    >>> SweepSettings.from_json(planned.to_json(), "settings.json", "") == planned
    True
    """

    model: str
    prompts: str
    prompts_hash: str
    ablation: str
    patches: int
    seed: int
    noise_scale: float
    limit: int | None
    model_hash: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    prompts_source: str = ""
    dtype: str = "float32"

    @classmethod
    def planned(
        cls,
        model: str,
        prompts: PromptSet,
        ablation: Ablation,
        limit: int | None,
        dtype: str = "float32",
    ) -> SweepSettings:
        """The settings of a sweep of the model named ``model``, known before it loads: all
        but ``model_hash``, which is ``""``."""
        return cls(
            model=model,
            prompts=prompts.name,
            prompts_hash=prompts.content_hash,
            ablation=ablation.kind.value,
            patches=ablation.draws,
            seed=ablation.seed,
            noise_scale=ablation.noise_scale,
            limit=limit,
            versions=package_versions(),
            prompts_source=prompts.source or "",
            dtype=dtype,
        )

    @classmethod
    def of(
        cls, lm: LanguageModel, prompts: PromptSet, ablation: Ablation, limit: int | None
    ) -> SweepSettings:
        """The settings of a sweep of ``lm`` over ``prompts``."""
        planned = cls.planned(lm.name, prompts, ablation, limit, dtype_name(lm.dtype))
        return replace(planned, model_hash=model_identity(lm))

    def to_json(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any, path: str | Path, advice: str) -> SweepSettings:
        """The settings of a parsed ``settings.json``, checked key by key.

        Keys added since a file was written (``model_hash``, ``versions``,
        ``prompts_source``, ``dtype``) take their defaults (a sweep recorded before ``--dtype``
        existed computed in float32); keys this version does not know are ignored.

        Raises
        ------
        DamagedFile
            If ``data`` is not an object, lacks a key, or holds a value of the wrong type,
            naming ``path``, the key, and ending with ``advice``.
        """

        def damaged(problem: str) -> DamagedFile:
            return DamagedFile(f"{path} is damaged: {problem}; {advice}")

        if not isinstance(data, dict):
            raise damaged(f"it holds {_json_kind(data)}, not an object of settings")
        required = [f.name for f in fields(cls) if _required(f)]
        missing = [k for k in required if k not in data]
        if missing:
            raise damaged(f"it lacks the key(s) {', '.join(map(repr, missing))}")
        found: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in data:
                continue
            value = data[f.name]
            kind, valid = _SETTING_TYPES[f.name]
            if not valid(value):
                raise damaged(f"its {f.name!r} is {json.dumps(value)[:60]}, not {kind}")
            found[f.name] = value
        return cls(**found)


def _required(f: Any) -> bool:
    return f.default is MISSING and f.default_factory is MISSING


def _json_kind(value: Any) -> str:
    kinds = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    return "null" if value is None else kinds.get(type(value), "a number")


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_ABLATIONS = tuple(k.value for k in AblationKind)
_SETTING_TYPES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "model": ("a string", lambda v: isinstance(v, str)),
    "prompts": ("a string", lambda v: isinstance(v, str)),
    "prompts_hash": ("a string", lambda v: isinstance(v, str)),
    "ablation": (f"one of {', '.join(_ABLATIONS)}", lambda v: v in _ABLATIONS),
    "patches": ("an integer >= 1", lambda v: _integer(v) and v >= 1),
    "seed": ("an integer", _integer),
    "noise_scale": (
        "a number > 0",
        lambda v: (_integer(v) or isinstance(v, float)) and v > 0,
    ),
    "limit": ("an integer >= 0 or null", lambda v: v is None or (_integer(v) and v >= 0)),
    "model_hash": ("a string", lambda v: isinstance(v, str)),
    "versions": (
        "an object of strings",
        lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()),
    ),
    "prompts_source": ("a string", lambda v: isinstance(v, str)),
    "dtype": (f"one of {', '.join(DTYPES)}", lambda v: v in DTYPES),
}


def read_settings(folder: str | Path, *, advice: str | None = None) -> SweepSettings | None:
    """The settings recorded in ``folder/settings.json``, checked; ``None`` if there is none.

    Parameters
    ----------
    folder : path
        A report directory.
    advice : str, optional
        What the message of a damaged file says to do; by default, to delete the directory or
        write to another ``--out``.

    Raises
    ------
    DamagedFile
        If ``settings.json`` cannot be read, is empty or not valid JSON, lacks a key or holds a
        value of the wrong type; the message names the file and what is wrong.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> read_settings(folder) is None
    True
    >>> _ = (folder / "settings.json").write_text('{"model": "x", ')
    >>> try:
    ...     read_settings(folder)
    ... except DamagedFile as e:
    ...     print(str(e).replace(str(folder), "reports/hydra"))  # doctest: +NORMALIZE_WHITESPACE
    reports/hydra/settings.json is damaged: it is not valid JSON (Expecting property name
    enclosed in double quotes: line 1 column 16 (char 15)); the results in reports/hydra cannot
    be checked against the settings they were made with: delete the directory reports/hydra, or
    write to another --out
    """
    folder = Path(folder)
    path = folder / "settings.json"
    if advice is None:
        advice = (
            f"the results in {folder} cannot be checked against the settings they were made "
            f"with: delete the directory {folder}, or write to another --out"
        )
    if not path.exists():
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DamagedFile(f"{path} is damaged: it cannot be read ({e}); {advice}") from e
    if not text.strip():
        raise DamagedFile(f"{path} is damaged: it is empty; {advice}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DamagedFile(f"{path} is damaged: it is not valid JSON ({e}); {advice}") from e
    return SweepSettings.from_json(data, path, advice)


@dataclass(frozen=True)
class CleanRun:
    """The clean pass: which prompts are kept, their token ids and top-1 tokens.

    Attributes
    ----------
    kept : tuple of int
        Indices (in the prompt set) of the prompts analysed, in order.
    ids, tokens : tuples
        Their token ids ``(1, T)`` and clean top-1 tokens i.
    total : int
        The number of prompts in the set.
    correct : int
        How many prompts the model predicts correctly top-1 (``len(kept)`` unless a limit cut
        the analysed set short).
    contributions : tensor, shape (kept, 2, L, d_model)
        The final-position contributions a^l_t, m^l_t of each kept prompt's clean run.
    donors : tuple of tensors
        The token ids of every correctly predicted prompt, whether or not a limit keeps it for
        analysis: the pool of mean and resample ablation values, so that a prompt's numbers do
        not depend on ``limit``. The kept prompts are its first entries.
    donor_contributions : tensor, shape (correct, 2, L, d_model)
        Their contributions.
    """

    kept: tuple[int, ...]
    ids: tuple[torch.Tensor, ...]
    tokens: tuple[int, ...]
    total: int
    correct: int
    contributions: torch.Tensor
    donors: tuple[torch.Tensor, ...] = ()
    donor_contributions: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.kept)


def _no_progress(items: Iterable[T], desc: str, total: int) -> Iterable[T]:
    return items


def _encode(tokenizer: Any, text: str) -> torch.Tensor:
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids
    if ids.shape[1] == 0:
        raise InvalidDataset(f"the prompt {text!r} encodes to no tokens")
    return ids  # type: ignore[no-any-return]


def target_token(lm: LanguageModel, target: str) -> int:
    """The first token of the expected object (with its leading space, as the model sees it)."""
    ids = lm.tokenizer(target, add_special_tokens=False).input_ids
    if not ids:
        raise InvalidDataset(f"the target {target!r} encodes to no tokens")
    return int(ids[0])


def clean_pass(
    lm: LanguageModel,
    prompts: PromptSet,
    *,
    limit: int | None = None,
    batch: int = 32,
    progress: Progress[Any] = _no_progress,
) -> CleanRun:
    """Find each prompt's clean top-1 token and keep the prompts the model gets right.

    Every prompt is run (it is cheap), so the number of correct prompts is always reported;
    ``limit`` then keeps the first ``limit`` correct ones. A prompt without a target is kept with
    the model's own prediction as i.
    """
    items = list(prompts)
    encoded = [_encode(lm.tokenizer, p.text) for p in items]
    _check_lengths(lm.context_length, lm.name, items, encoded)
    top, contributions = _top_tokens(lm, encoded, batch, progress)
    kept, ids_kept, tokens = [], [], []
    for index, (prompt, ids) in enumerate(zip(items, encoded, strict=True)):
        if prompt.target is None or top[index] == target_token(lm, prompt.target):
            kept.append(index)
            ids_kept.append(ids)
            tokens.append(top[index])
    n = len(kept) if limit is None else min(limit, len(kept))
    pool = contributions[torch.tensor(kept, dtype=torch.long)]
    return CleanRun(
        tuple(kept[:n]),
        tuple(ids_kept[:n]),
        tuple(tokens[:n]),
        len(items),
        len(kept),
        pool[:n],
        tuple(ids_kept),
        pool,
    )


def check_lengths(tokenizer: Any, limit: int | None, model: str, prompts: PromptSet) -> None:
    """Refuse a prompt longer than the model's context, before the model's weights load.

    Parameters
    ----------
    tokenizer
        The model's tokenizer (:func:`~.lm.load_tokenizer`).
    limit : int, optional
        The context length (``None``: not known, nothing is refused).
    model : str
        The model's name, for the message.
    prompts : PromptSet
        The prompts.

    Raises
    ------
    InvalidDataset
        Naming the first prompt past the context, both lengths and the fix.
    """
    items = list(prompts)
    _check_lengths(limit, model, items, [_encode(tokenizer, p.text) for p in items])


def _check_lengths(
    limit: int | None, model: str, items: list[Any], encoded: list[torch.Tensor]
) -> None:
    """Refuse a prompt longer than the model's context, naming it and both lengths."""
    if limit is None:
        return
    for index, (prompt, ids) in enumerate(zip(items, encoded, strict=True)):
        if int(ids.shape[1]) > limit:
            raise InvalidDataset(
                f"prompt {index} ({prompt.text[:60]!r}) is {int(ids.shape[1])} tokens long, "
                f"past the {limit} tokens of {model}'s context (max_position_embeddings): "
                f"positions past it have no trained embedding, so its numbers would mean "
                f"nothing; shorten the prompt or drop it from the set"
            )


def _top_tokens(
    lm: LanguageModel, encoded: list[torch.Tensor], batch: int, progress: Progress[Any]
) -> tuple[list[int], torch.Tensor]:
    """The clean top-1 token and contributions at the final position of every prompt.

    Prompts of the same length run together through the traced model (no padding, so each row
    computes exactly what it would alone). Returns the tokens and the contributions, shape
    (prompts, 2, L, d_model).
    """
    by_length: dict[int, list[int]] = {}
    for i, ids in enumerate(encoded):
        by_length.setdefault(int(ids.shape[1]), []).append(i)
    groups = [
        members[j : j + batch]
        for members in by_length.values()
        for j in range(0, len(members), batch)
    ]
    top = [0] * len(encoded)
    contributions = torch.zeros(len(encoded), 2, lm.n_layers, lm.d_model)
    for group in progress(groups, "clean pass", len(groups)):
        found, logits = final_readings(lm, torch.cat([encoded[i] for i in group]))
        contributions[torch.tensor(group)] = found
        for i, t in zip(group, logits.argmax(-1).tolist(), strict=True):
            top[i] = int(t)
    return top, contributions


def check_draws(ablation: Ablation, prompts: int, what: str) -> None:
    """Refuse a resample ablation with more draws K than each prompt has donors.

    Each prompt draws its K patches without replacement from the ``prompts - 1`` others
    (eq. 38), so K must not exceed that; a silent cap would make the report's K a lie.

    Raises
    ------
    InvalidIntervention
        Naming both numbers and the fix.

    Examples
    --------
    >>> check_draws(Ablation(patches=15), 16, "prompts")
    >>> try:
    ...     check_draws(Ablation(patches=5), 3, "prompts in the set")
    ... except InvalidIntervention as e:
    ...     print(str(e)[:60])
    --patches 5 asks for 5 resample draws per prompt, but with 3
    """
    if ablation.kind is not AblationKind.RESAMPLE or ablation.patches <= prompts - 1:
        return
    others = max(prompts - 1, 0)
    raise InvalidIntervention(
        f"--patches {ablation.patches} asks for {ablation.patches} resample draws per prompt, "
        f"but with {prompts} {what} each prompt has only {others} other"
        f"{'s' if others != 1 else ''} to draw from; use "
        f"--patches {others} or fewer, or a larger prompt set"
    )


def _difference(key: str, there: Any, now: Any) -> str:
    """One setting's difference; for a mapping (the versions), only the entries that differ."""
    if isinstance(there, dict) and isinstance(now, dict):
        keys = [k for k in {**there, **now} if there.get(k) != now.get(k)]
        return ", ".join(f"{key}[{k}]: {there.get(k)!r} there, {now.get(k)!r} now" for k in keys)
    return f"{key}: {there!r} there, {now!r} now"


_NOT_COMPARED = ("prompts_source",)
"""Settings a resume does not compare: where the prompts were read from (their hash is)."""


def differences(recorded: SweepSettings, now: SweepSettings, skip: Collection[str] = ()) -> str:
    """The settings that differ, as ``key: 'there' there, 'now' now``; ``""`` if none."""
    there, found = recorded.to_json(), now.to_json()
    keys = [k for k in there if k not in skip and there[k] != found[k]]
    return ", ".join(_difference(k, there[k], found[k]) for k in keys)


def check_resume(
    out: str | Path, settings: SweepSettings, *, identity: bool = True
) -> SweepSettings | None:
    """Refuse to resume in ``out`` if its ``settings.json`` records other settings.

    Parameters
    ----------
    out : path
        The output directory.
    settings : SweepSettings
        The settings of the run about to start.
    identity : bool
        Compare the model's identity (``model_hash``); ``False`` before the model loads, when
        it is not known yet (the rest is compared, and the identity once the model is loaded).

    Returns
    -------
    SweepSettings or None
        The recorded settings, ``None`` if ``out`` holds no ``settings.json``.

    Raises
    ------
    DamagedFile
        If ``settings.json`` cannot be read back (:func:`read_settings`).
    SettingsMismatch
        If it records other settings, naming each difference.
    """
    out = Path(out)
    recorded = read_settings(out)
    if recorded is None:
        return None
    skip = [*_NOT_COMPARED, *(() if identity else ("model_hash",))]
    shown = differences(recorded, settings, skip)
    if shown:
        raise SettingsMismatch(
            f"{out} holds a sweep made with other settings ({shown}); resume it with the "
            f"same settings, or write to another --out directory"
        )
    return recorded


def _check_settings(out: Path, settings: SweepSettings) -> None:
    if check_resume(out, settings) is None:
        out.mkdir(parents=True, exist_ok=True)
        write_atomic(out / "settings.json", json.dumps(settings.to_json(), indent=2) + "\n")


def run_sweep(
    lm: LanguageModel,
    prompts: PromptSet,
    ablation: Ablation,
    out: str | Path,
    *,
    limit: int | None = None,
    chunk: int | None = None,
    memory: int | None = None,
    progress: Progress[Any] = _no_progress,
    shard: Shard | None = None,
) -> tuple[CleanRun, list[PromptMeasures]]:
    """Run (or resume) the sweep and return the clean pass and every kept prompt's measures.

    Parameters
    ----------
    lm : LanguageModel
        The model.
    prompts : PromptSet
        The prompts.
    ablation : Ablation
        The ablation setting.
    out : path
        The output directory; ``measures/`` inside it holds one file per prompt.
    limit : int, optional
        Analyse at most this many kept prompts (the first ones in the set).
    chunk : int, optional
        At most this many runs per batched execution (bounds memory); default: all the runs
        of a prompt at once.
    memory : int, optional
        A budget in bytes for the activations of one batched execution; default none.
    progress : callable
        Wraps iterables for a progress bar: ``progress(items, description, total)``.
    shard : callable, optional
        Computes the prompts whose file is missing elsewhere: ``shard(clean, missing)`` writes
        each prompt's file (:func:`compute_prompt`) and yields its index as it is done (the Ray
        workers of :class:`~.distributed.RayShards`). The files are then loaded as a resume
        loads them, so the results are those of a single-process run.

    Raises
    ------
    SettingsMismatch
        If ``out`` holds a sweep made with other settings.
    DamagedFile
        If ``out/settings.json`` or a saved ``measures/NNNNN.npz`` cannot be read back
        (truncated, not valid JSON, missing keys, arrays of the wrong shape); the message names
        the file and what to delete.
    InvalidDataset
        If no prompt is kept.
    """
    out = Path(out)
    _check_settings(out, SweepSettings.of(lm, prompts, ablation, limit))
    clean = clean_pass(lm, prompts, limit=limit, progress=progress)
    if not clean.kept:
        raise InvalidDataset(
            f"the model predicts the expected object top-1 for none of the {clean.total} "
            f"prompts of {prompts.name!r}, so there is nothing to analyse"
        )
    check_draws(ablation, clean.correct, "prompts the model predicts correctly")
    values = AblationValues.of(lm, clean)
    folder = out / "measures"
    folder.mkdir(parents=True, exist_ok=True)
    missing = [j for j in range(len(clean)) if not measures_path(folder, j).exists()]
    if shard is not None and missing:  # computed elsewhere, each written to its file
        for _ in progress(shard(clean, missing), "ablations", len(missing)):
            pass
    results = each_prompt(
        len(clean),
        folder,
        lambda j, path: PromptMeasures.load(
            path, layers=lm.n_layers, draws=ablation.draws, prompt=j
        ),
        lambda j: compute_prompt(
            lm, clean, ablation, values, j, folder, chunk=chunk, memory=memory
        ),
        progress=progress,
        description="ablations",
    )
    return clean, results


def measures_path(folder: Path, j: int) -> Path:
    """Where prompt ``j``'s measures are saved in a sweep's ``measures/`` folder."""
    return folder / f"{j:05d}.npz"


class Saveable(Protocol):
    """A prompt's result that writes itself to a file."""

    def save(self, path: Path) -> None:
        """Write the result to ``path``."""
        ...


S = TypeVar("S", bound=Saveable)


def saved(found: S, folder: Path, j: int) -> S:
    """``found`` written to prompt ``j``'s file in ``folder`` (an interrupted write leaves no
    half file behind), and returned."""
    with atomic(measures_path(folder, j)) as tmp:
        found.save(tmp)
    return found


def each_prompt(
    count: int,
    folder: Path,
    load: Callable[[int, Path], T],
    compute: Callable[[int], T],
    *,
    progress: Progress[Any],
    description: str,
) -> list[T]:
    """The result of each of ``count`` prompts: read from its file in ``folder`` where a run
    saved it, else ``compute(j)`` (which saves it), so an interrupted sweep resumes.

    The loop runs in :func:`~scmnet.heap.frozen_heap`: the model, its graph and the clean pass
    live through it.
    """
    results = []
    with frozen_heap():
        for j in progress(range(count), description, count):
            path = measures_path(folder, j)
            results.append(load(j, path) if path.exists() else compute(j))
    return results


@dataclass(frozen=True)
class AblationValues:
    """What the ablations of every prompt read, built once per process from the clean pass.

    Attributes
    ----------
    pool : list of mappings
        The donors' contexts (``{"input_ids": ids}`` on the model's device).
    readings : scmnet.SiteValues
        Their recorded contributions (:func:`~.causal.recorded_readings`).
    everywhere : dict
        The draws that do not depend on the prompt: zero, and mean (one rule, so that its
        means are computed once).
    """

    pool: list[dict[str, torch.Tensor]]
    readings: sn.SiteValues
    everywhere: dict[AblationKind, list[Draw]]

    @classmethod
    def of(cls, lm: LanguageModel, clean: CleanRun) -> AblationValues:
        """The values of ``clean``'s donors, for ``lm``."""
        pool = [{"input_ids": ids.to(lm.device)} for ids in clean.donors]
        assert clean.donor_contributions is not None
        readings = recorded_readings(lm, pool, clean.donor_contributions)
        everywhere: dict[AblationKind, list[Draw]] = {
            AblationKind.ZERO: [sn.zero()],
            AblationKind.MEAN: [sn.mean(pool)],
        }
        return cls(pool, readings, everywhere)


def prompt_draws(
    lm: LanguageModel, clean: CleanRun, ablation: Ablation, values: AblationValues, j: int
) -> list[Draw] | torch.Tensor:
    """The ablation values of kept prompt ``j``'s draws: noised contributions, patches from its
    donors (:func:`~.ablations.donors`), or the rule every prompt shares."""
    if ablation.kind is AblationKind.NOISE:
        return noised_contributions(lm, clean.ids[j], j, ablation)
    if ablation.kind is AblationKind.RESAMPLE:
        return [sn.patch(values.pool[d]) for d in donors(j, len(values.pool), ablation)]
    return values.everywhere[ablation.kind]


def compute_prompt(
    lm: LanguageModel,
    clean: CleanRun,
    ablation: Ablation,
    values: AblationValues,
    j: int,
    folder: Path,
    *,
    chunk: int | None = None,
    memory: int | None = None,
) -> PromptMeasures:
    """Measure kept prompt ``j`` and save it to ``folder/NNNNN.npz``, atomically.

    Its numbers depend only on ``j``, the ablation and the clean run (resample donors are drawn
    by :func:`~.ablations.donors` from the seed), so any process that holds the same model and
    clean run computes the same file: the loop of :func:`run_sweep` and the Ray workers of
    ``scmnet.adapters.transformer.distributed`` both call this.
    """
    ids, tok = clean.ids[j], clean.tokens[j]
    draws = prompt_draws(lm, clean, ablation, values, j)
    measures = measure_prompt(
        lm, ids, tok, draws, prompt=j, chunk=chunk, memory=memory, values=values.readings
    )
    hydra_model(lm).clear_cache()  # the prompt's clean run is not read again
    return saved(measures, folder, j)
