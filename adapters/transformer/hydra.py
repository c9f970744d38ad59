"""The Hydra-effect analysis end to end: load, sweep, report (what ``scmnet hydra`` runs).

Everything that can refuse the model does so before the output folder is touched: loading
checks the family (:func:`~.finder.spec_of`), then the model is traced once, with torch's own
output held back by :func:`scmnet.trace` (shown with ``verbose=True`` if tracing fails). A run that
fails before its first result leaves the output folder as it found it
(:func:`~.output_folder.restoring`).

Examples
--------
From Python, on the embedded model (this takes minutes, so it is not run as a doctest)::

    from scmnet.adapters.transformer.hydra import run_hydra
    summary = run_hydra(out="reports/hydra", limit=20)
    print(summary["blocks"]["attn"]["largest_drop"])

    # the same sweep again, from its record alone: the same tables
    again = rerun("reports/hydra", out="reports/hydra-again")
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch

from scmnet.errors import InvalidArgument, UntraceableModel

from .ablations import Ablation, AblationKind
from .anti_erasure import run_anti_erasure_sweep
from .causal import hydra_model
from .device_map import DeviceMap, load_arguments
from .distributed import Cluster, ModelRecipe, RayShards, connected
from .head_sweep import run_head_sweep
from .heads import head_layout
from .lm import LanguageModel, load_model, load_tokenizer, quiet_libraries
from .model_source import resolve_model
from .neurons import neuron_layout
from .output_folder import check_writable, restoring
from .precision import dtype_name, parse_dtype
from .prompts import PromptSet, builtin_prompts, load_prompts
from .record import Record
from .report import write_report
from .selfrepair import check_top
from .sweep import SweepSettings, check_draws, check_lengths, check_resume, run_sweep

__all__ = ["rerun", "run_hydra"]

T = TypeVar("T")


def _tqdm(items: Iterable[T], desc: str, total: int) -> Iterable[T]:
    from tqdm.auto import tqdm

    bar: Iterable[T] = tqdm(items, desc=desc, total=total, unit="prompt", leave=False)
    return bar


def run_hydra(
    *,
    model: str | None = None,
    prompts: str | Path | PromptSet | None = None,
    ablation: str = "resample",
    patches: int = 15,
    limit: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    out: str | Path = "reports/hydra",
    threads: int | None = None,
    progress: bool = True,
    chunk: int | None = None,
    memory: int | None = None,
    verbose: bool = False,
    noise_scale: float = 3.0,
    record: Record | None = None,
    dtype: str | torch.dtype = "float32",
    workers: int | None = None,
    ray: str | None = None,
    device_map: DeviceMap | Path | None = None,
    max_memory: str | Mapping[str, Any] | None = None,
    offload_folder: str | Path | None = None,
    repair_top: float | None = None,
    units: str = "layers",
    anti_erasure: bool = False,
) -> dict[str, Any]:
    """Run the Hydra analysis and write the report; returns the summary.

    Parameters
    ----------
    model : str, optional
        A local Hugging Face model directory, a ``.gguf`` file (or a directory holding one), or
        a hub name where the hub is not offline; default the embedded SmolLM2-135M-Instruct.
    prompts : path or PromptSet, optional
        A prompt file (ROME known-facts JSON, CounterFact JSON, JSONL or text); default the
        built-in factual-recall set.
    ablation : {"resample", "zero", "mean", "noise"}
        How layers are ablated (Appendix A).
    patches : int
        K draws per ablation for resample and noise ablation (eq. 39).
    limit : int, optional
        Analyse at most this many correctly-predicted prompts.
    seed : int
        Seed of every random draw.
    device : str
        Torch device, e.g. ``"cpu"`` or ``"cuda"``.
    out : path
        The report directory; a sweep interrupted there resumes.
    threads : int, optional
        ``torch.set_num_threads`` for the run.
    progress : bool
        Show progress bars; ``False`` (``--quiet``) also silences transformers' and
        huggingface_hub's loading bars and log lines (``lm.quiet_libraries``).
    chunk : int, optional
        At most this many runs per batched execution (bounds memory); default: all the runs
        of a prompt at once.
    memory : int, optional
        A budget in bytes for the activations of one batched execution (``--batch-memory``);
        default none.
    verbose : bool
        Print torch's own output while tracing the model (warnings, log lines) on standard
        error; by default it is held back.
    noise_scale : float
        For noise ablation: the standard deviation of the noise, in standard deviations of the
        embedding matrix (:class:`~.ablations.Ablation`).
    record : Record, optional
        The recorded sweep this run re-runs (:func:`rerun` passes it): once the model loads,
        its identity and the other settings are compared with the record's.
    dtype : {"float32", "bfloat16", "float16"}
        The dtype the model's parameters and activations are kept in (``--dtype``); the
        readouts are accumulated in float32 whatever it is
        (``scmnet.adapters.transformer.precision``). It changes the numbers, so it is recorded
        in ``settings.json``.
    workers : int, optional
        Compute the prompts on a local Ray cluster of this many workers, started for the run
        (``scmnet.adapters.transformer.distributed``; extra ``scmnet[ray]``). Each worker loads
        the model from ``model`` and uses ``threads`` torch threads (default 1, or this
        process's number with one worker). The numbers, and the report, are those of a
        single-process run with as many threads, byte for byte.
    ray : str, optional
        Compute the prompts on the existing Ray cluster at this address (``"auto"``,
        ``"ray://host:10001"``), whose nodes hold the model at the same path and share ``out``.
    device_map : str, mapping or Path, optional
        Split a model larger than one device across devices (``--device-map auto``; see
        :func:`~scmnet.adapters.transformer.load_model`); ``device`` must then be left at
        ``"cpu"``. How, not what: the numbers are those of the model on one device, and the
        setting is not recorded.
    max_memory : str or mapping, optional
        With a device map, the most memory each device may hold (``"cpu=2GiB,cuda:0=20GiB"``).
    offload_folder : path, optional
        With a device map, where modules mapped to ``"disk"`` are offloaded.
    repair_top : float, optional
        The report's self-repair shares over only the prompts where the ablated layer's clean
        direct effect is in its top ``repair_top`` fraction (``--repair-top``, e.g. 0.02;
        :func:`~scmnet.adapters.transformer.selfrepair.shares`). How the report reads the sweep, not
        what it computes: not recorded. Default: every prompt.
    units : {"layers", "heads"}
        ``"heads"`` (``--units heads``) also ablates every attention head alone, with the same
        ablation, after the layer sweep (``scmnet.adapters.transformer.head_sweep``):
        ``heads/`` holds each prompt's measures (resumable), the report adds heads.csv and a
        table of the heads of largest direct effect. Its family's attention must add to the
        residual (not Gemma 3).
    anti_erasure : bool
        Also measure, for every ablated layer, the last MLP's anti-erasure neuron by neuron
        (``--anti-erasure``; ``scmnet.adapters.transformer.anti_erasure``), with the same
        ablations, after the layer sweep: ``anti_erasure/`` holds each prompt's (resumable),
        ``selfrepair.csv`` gains the columns ``anti_erasure`` and ``last_mlp_change``. Its
        family's MLP must add to the residual (not Gemma 3).

    Raises
    ------
    UnsupportedModel
        If the model is an encoder or an encoder-decoder (checked from its config before it
        loads) or its family cannot be analysed (before anything is written to ``out``).
    UntraceableModel
        If the model cannot be traced; the output folder is left as it was found.
    InvalidArgument
        If ``out`` is an existing file or cannot be written to, ``device`` is not a device of
        this machine, ``dtype`` is not one of :data:`~.precision.DTYPES`, or ``model`` names
        no model, an incomplete one or a truncated weight file (all checked before the model
        loads: :func:`~.model_source.resolve_model`).
    InvalidIntervention
        If resample ablation asks for more draws than the prompt set has donors (checked
        before the model loads, and again once the correct prompts are known).
    DamagedFile
        If ``out`` holds a ``settings.json`` that cannot be read back (checked before the model
        loads), or a ``measures/NNNNN.npz`` that cannot; the message names the file and what to
        delete.
    SettingsMismatch
        If ``out`` holds a sweep made with other settings (all but the model's identity are
        compared before the model loads), or the model is not the ``record``'s, or a Ray
        worker's model is not this process's.
    InvalidArgument
        If both ``workers`` and ``ray`` are given, ``workers`` is not positive,
        ``device_map`` comes with either of them, or ``repair_top`` is not a fraction in
        (0, 1].
    MissingDependency
        If ``workers`` or ``ray`` is given and Ray (extra ``ray``) is not installed.
    """
    cluster = Cluster.of(workers, ray)
    check_top(repair_top)
    if units not in UNITS:
        raise InvalidArgument(f"--units {units!r}: choose one of {', '.join(UNITS)}")
    if threads is not None:
        torch.set_num_threads(threads)
    started = time.perf_counter()
    kinds = {k.value: k for k in AblationKind}
    if ablation not in kinds:
        from scmnet.errors import InvalidIntervention

        raise InvalidIntervention(
            f"unknown ablation {ablation!r}; choose one of {', '.join(kinds)}"
        )
    setting = Ablation(kinds[ablation], patches=patches, seed=seed, noise_scale=noise_scale)
    prompt_set = (
        prompts
        if isinstance(prompts, PromptSet)
        else builtin_prompts()
        if prompts is None
        else load_prompts(prompts)
    )
    check_draws(setting, len(prompt_set), "prompts in the set")
    check_device(device)
    precision = parse_dtype(dtype)
    placing = load_arguments(device_map, max_memory, offload_folder)
    if placing and torch.device(device) != torch.device("cpu"):
        raise InvalidArgument(
            f"--device-map places the model itself, so it takes no --device (got {device!r}); "
            f"drop --device, or drop --device-map to put the whole model on {device!r}"
        )
    if placing and cluster is not None:
        raise InvalidArgument(
            "--device-map splits one model across this machine's devices, but each Ray worker "
            "(--workers, --ray) loads the whole model onto its own --device; use one of them"
        )
    source = resolve_model(model)
    out = Path(out)
    check_writable(out)
    planned = SweepSettings.planned(source.label, prompt_set, setting, limit, dtype_name(precision))
    check_resume(out, planned, identity=False)
    with quiet_libraries(not progress):  # --quiet: no loading bars or log lines either
        tokenizer, context = load_tokenizer(source)  # the prompts are checked before the weights
        check_lengths(tokenizer, context, source.label, prompt_set)
        lm = load_model(source, device=device, dtype=precision, tokenizer=tokenizer, **placing)
        if units == "heads":
            head_layout(lm, 0)  # an unsupported family is refused before the sweep
        if anti_erasure:
            neuron_layout(lm, lm.n_layers - 1)
        if record is not None:
            record.check(SweepSettings.of(lm, prompt_set, setting, limit))
        show = _tqdm if progress else None
        kwargs: dict[str, Any] = {"limit": limit, "chunk": chunk, "memory": memory}
        if show is not None:
            kwargs["progress"] = show
        with restoring(out):
            _trace(lm, verbose=verbose)
            if cluster is None:
                clean, measures = run_sweep(lm, prompt_set, setting, out, **kwargs)
            else:
                each = threads or (torch.get_num_threads() if workers == 1 else 1)
                recipe = ModelRecipe.of(source, lm, device, each)
                kwargs["shard"] = RayShards(
                    recipe, setting, out / "measures", chunk, memory, workers
                )
                with connected(cluster, each):
                    clean, measures = run_sweep(lm, prompt_set, setting, out, **kwargs)
            heads = []
            if units == "heads":  # in this process, after the layers
                kwargs.pop("limit")
                kwargs.pop("shard", None)
                heads = run_head_sweep(lm, clean, setting, out, **kwargs)
            erasure = []
            if anti_erasure:  # in this process, after the layers (and heads)
                kwargs.pop("limit", None)
                kwargs.pop("shard", None)
                erasure = run_anti_erasure_sweep(lm, clean, setting, out, **kwargs)
        settings = SweepSettings.of(lm, prompt_set, setting, limit)
        summary = write_report(
            out,
            measures,
            clean,
            prompt_set,
            settings,
            parallel=lm.parallel,
            repair_top=repair_top,
            heads=heads,
            anti_erasure=erasure,
        )
    summary["seconds"] = round(time.perf_counter() - started, 1)
    return summary


def rerun(
    record: str | Path,
    *,
    out: str | Path,
    device: str = "cpu",
    threads: int | None = None,
    progress: bool = True,
    chunk: int | None = None,
    memory: int | None = None,
    verbose: bool = False,
    workers: int | None = None,
    ray: str | None = None,
    device_map: DeviceMap | Path | None = None,
    max_memory: str | Mapping[str, Any] | None = None,
    offload_folder: str | Path | None = None,
    repair_top: float | None = None,
    units: str = "layers",
    anti_erasure: bool = False,
) -> dict[str, Any]:
    """Re-run a recorded sweep from its ``settings.json`` alone (``scmnet hydra --from-record``).

    The model, the prompts, the ablation, the patches, the seed, the noise scale, the dtype and
    the limit
    all come from ``record/settings.json``; the report goes to ``out``, a directory other than
    ``record`` (an interrupted re-run resumes there). The same settings give the same tables.

    Parameters
    ----------
    record : path
        The ``--out`` directory of an earlier run.
    out : path
        Where the re-run's report goes.
    device, threads, progress, chunk, memory, verbose, workers, ray, device_map, max_memory, \
    offload_folder, repair_top, units, anti_erasure
        As for :func:`run_hydra`: how to compute and report, not what.

    Returns
    -------
    dict
        The summary, as :func:`run_hydra` returns it.

    Raises
    ------
    InvalidArgument
        If ``record`` holds no ``settings.json``, ``out`` is ``record``, or the record does not
        say where its prompts came from.
    DamagedFile
        If ``record/settings.json`` cannot be read back.
    SettingsMismatch
        If the prompt file's content changed since the record (before the model loads), or the
        model's identity is not the recorded one (once it loads); the message shows the
        difference.

    Examples
    --------
    >>> import tempfile
    >>> empty = tempfile.mkdtemp()
    >>> try:
    ...     rerun(empty, out=empty + "-again")
    ... except InvalidArgument as e:
    ...     print(str(e).replace(empty, "reports/old"))  # doctest: +NORMALIZE_WHITESPACE
    --from-record 'reports/old' holds no settings.json, so it is not the report of a scmnet
    hydra run; give the --out directory of an earlier run
    """
    found = Record.read(record)
    if Path(out).resolve() == found.folder.resolve():
        raise InvalidArgument(
            f"--out {str(out)!r} is the recorded directory itself; a re-run writes a new report "
            f"to compare with the recorded one, so give another --out (an interrupted run in "
            f"{str(out)!r} resumes with its own settings: scmnet hydra with them and --out)"
        )
    prompts = found.prompts()
    ablation = found.ablation()
    return run_hydra(
        model=found.model,
        prompts=prompts,
        ablation=ablation.kind.value,
        patches=ablation.patches,
        limit=found.settings.limit,
        seed=ablation.seed,
        noise_scale=ablation.noise_scale,
        dtype=found.settings.dtype,
        device=device,
        out=out,
        threads=threads,
        progress=progress,
        chunk=chunk,
        memory=memory,
        verbose=verbose,
        record=found,
        workers=workers,
        ray=ray,
        device_map=device_map,
        max_memory=max_memory,
        offload_folder=offload_folder,
        repair_top=repair_top,
        units=units,
        anti_erasure=anti_erasure,
    )


#: The units ``--units`` takes: layers (the paper's), or layers and then every attention head.
UNITS = ("layers", "heads")


def check_device(device: str) -> torch.device:
    """The torch device ``device`` names, checked before anything loads.

    Raises
    ------
    InvalidArgument
        If the string names no device, or a CUDA or MPS device this machine does not have.

    Examples
    --------
    >>> check_device("cpu")
    device(type='cpu')
    >>> try:
    ...     check_device("gpu0")
    ... except InvalidArgument as e:
    ...     print(str(e)[:39])
    --device 'gpu0' is not a torch device (
    """
    try:
        found = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise InvalidArgument(
            f"--device {device!r} is not a torch device ({e}); use cpu, cuda, cuda:N or mps"
        ) from e
    if found.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise InvalidArgument(
                f"--device {device!r}: this machine has no CUDA device (torch "
                f"{torch.__version__} sees none); use --device cpu"
            )
        if found.index is not None and found.index >= count:
            raise InvalidArgument(
                f"--device {device!r}: this machine has {count} CUDA device(s), numbered from 0"
            )
    if found.type == "mps" and not torch.backends.mps.is_available():
        raise InvalidArgument(f"--device {device!r}: MPS is not available here; use --device cpu")
    return found


def _trace(lm: LanguageModel, *, verbose: bool) -> None:
    """Trace ``lm`` once (:func:`~.causal.hydra_model`). torch's own output while tracing is
    held back by :func:`scmnet.trace`; if tracing fails it is printed on standard error with
    ``verbose``, otherwise counted in the error."""
    try:
        hydra_model(lm)
    except UntraceableModel as e:
        if e.details and verbose:
            print(f"scmnet hydra: torch's output while tracing {lm.name}:", file=sys.stderr)
            print("\n".join(e.details), file=sys.stderr)
            raise
        if e.details:
            note = f"torch printed {len(e.details)} lines while tracing; see them with --verbose"
            raise UntraceableModel(f"{e} ({note})", e.details) from e
        raise
