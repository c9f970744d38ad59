"""Running the missing prompts of a sweep on Ray workers (``scmnet hydra --workers N/--ray``).

The process that runs :func:`~.hydra.run_hydra` (the driver) loads the model and makes the
clean pass as always; :class:`RayShards` then hands the prompts whose ``measures/NNNNN.npz`` is
missing to Ray actors, one at a time as each actor frees up (a slow worker holds no one up).
Each actor loads the model once from the same source, device and dtype, checks that it is the
driver's (:func:`~.identity.model_identity`), rebuilds the ablation values from the shipped
clean run and writes each prompt's file atomically (:func:`~.sweep.compute_prompt`) into the
shared output directory. The driver then loads every file, as a resume does, so the report is
the one a single process with as many torch threads writes, byte for byte (torch's sums over
threads run in another order with another number of threads).

A sharded run changes how the prompts are computed, not what: the options are not recorded
in ``settings.json``, and a sweep interrupted in one mode resumes in the other. Ray is the
optional extra ``scmnet[ray]``, imported only when a cluster is asked for.

Examples
--------
The options are checked before anything loads:

>>> Cluster.of(None, None) is None
True
>>> try:
...     Cluster.of(2, "auto")
... except InvalidArgument as e:
...     print(e)  # doctest: +NORMALIZE_WHITESPACE
--workers 2 starts a local Ray cluster and --ray 'auto' connects to an existing one; give
one of them
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from scmnet.errors import InvalidArgument, ScmnetError, require
from scmnet.heap import frozen_heap

from .ablations import Ablation
from .causal import hydra_model
from .identity import model_identity
from .lm import LanguageModel, load_model, load_tokenizer, quiet_libraries
from .model_source import ModelSource, reason
from .sweep import AblationValues, CleanRun, SettingsMismatch, compute_prompt

__all__ = [
    "Cluster",
    "ModelRecipe",
    "RayShards",
    "WorkerFailed",
    "connected",
    "placement",
    "release",
]


class WorkerFailed(ScmnetError, RuntimeError):
    """A Ray worker died (killed, out of memory, its node lost) before it finished a prompt."""


@dataclass(frozen=True)
class Cluster:
    """Where a sweep's prompts are computed: a local Ray cluster of ``workers`` CPUs started
    for the run (``--workers N``), or the existing cluster at ``address`` (``--ray``).

    Build one with :meth:`of`, which checks the options.
    """

    workers: int | None = None
    address: str | None = None

    @classmethod
    def of(cls, workers: int | None, address: str | None) -> Cluster | None:
        """The cluster the options ask for; ``None`` for a single-process run.

        Raises
        ------
        InvalidArgument
            If both are given, ``workers`` is not a positive integer or ``address`` is empty.
        MissingDependency
            If Ray (extra ``ray``) is not installed.
        """
        if workers is None and address is None:
            return None
        if workers is not None and address is not None:
            raise InvalidArgument(
                f"--workers {workers} starts a local Ray cluster and --ray {address!r} "
                f"connects to an existing one; give one of them"
            )
        if workers is not None and (isinstance(workers, bool) or workers < 1):
            raise InvalidArgument(
                f"--workers {workers!r}: give a positive number of Ray workers, or leave it "
                f"out for a single-process run"
            )
        if address is not None and not address.strip():
            raise InvalidArgument(
                "--ray '': give the address of a Ray cluster (auto, or ray://host:10001)"
            )
        require("ray", "ray")
        return cls(workers, address)


def _ray() -> Any:
    require("ray", "ray")
    return importlib.import_module("ray")


@contextmanager
def connected(cluster: Cluster, threads: int = 1) -> Iterator[None]:
    """Start (``workers``) or join (``address``) the Ray cluster for the block.

    A Ray already initialised in this process is used as it is, and its actors stay up for the
    next sweep (:func:`~.distributed.release` ends them). Only what this call started is shut
    down (``ray.shutdown`` after joining an existing cluster disconnects from it, and ends this
    run's actors, no more).
    """
    ray = _ray()
    if ray.is_initialized():
        yield
        return
    if cluster.workers is not None:
        cpus = cluster.workers * threads  # each worker runs ``threads`` torch threads
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    else:
        ray.init(address=cluster.address, log_to_driver=False)
    try:
        yield
    finally:
        release()
        ray.shutdown()


@dataclass(frozen=True)
class ModelRecipe:
    """How a worker loads the driver's model, and the identity it must have.

    Attributes
    ----------
    source : ModelSource
        Where the driver loaded it from (:func:`~.model_source.resolve_model`); a worker on
        another machine needs the same path there.
    device : str
        Its torch device (``"cuda"`` on a worker given a GPU of its own).
    dtype : torch.dtype
        Its parameter dtype.
    identity : str
        :func:`~.identity.model_identity` of the driver's model.
    threads : int
        ``torch.set_num_threads`` in each worker.
    """

    source: ModelSource
    device: str
    dtype: torch.dtype
    identity: str
    threads: int

    @classmethod
    def of(cls, source: ModelSource, lm: LanguageModel, device: str, threads: int) -> ModelRecipe:
        """The recipe of ``lm``, loaded from ``source`` onto ``device``."""
        return cls(source, device, lm.dtype, model_identity(lm), threads)

    def load(self) -> LanguageModel:
        """Load the model, traced, and check it is the driver's.

        Raises
        ------
        SettingsMismatch
            If the loaded model's identity is not :attr:`identity` (the files at the source
            differ on this machine).
        """
        torch.set_num_threads(self.threads)
        with quiet_libraries():
            tokenizer, _ = load_tokenizer(self.source)
            lm = load_model(self.source, device=self.device, dtype=self.dtype, tokenizer=tokenizer)
        found = model_identity(lm)
        if found != self.identity:
            raise SettingsMismatch(
                f"a Ray worker loaded another model from {self.source.label!r} (model_hash: "
                f"{self.identity!r} in the driver, {found!r} in the worker); give every node "
                f"of the cluster the same model files"
            )
        hydra_model(lm)
        return lm


class _Worker:
    """A Ray actor: the model, loaded once, and the prompts of the sweep it is set up for."""

    def __init__(self) -> None:
        self.recipe: ModelRecipe | None = None
        self.lm: LanguageModel | None = None
        self.sweep: tuple[CleanRun, Ablation, AblationValues, Path, int | None, int | None]

    def setup(
        self,
        recipe: ModelRecipe,
        clean: CleanRun,
        ablation: Ablation,
        folder: str,
        chunk: int | None,
        memory: int | None,
    ) -> None:
        """Load the model (unless this actor holds it already) and the sweep's ablation values;
        an error is raised in the driver."""
        if self.lm is None or self.recipe != recipe:
            self.lm, self.recipe = None, None  # the old model goes first, even if this fails
            self.lm, self.recipe = recipe.load(), recipe
        values = AblationValues.of(self.lm, clean)
        self.sweep = (clean, ablation, values, Path(folder), chunk, memory)

    def compute(self, j: int) -> int:
        """Measure prompt ``j`` of the sweep set up, write its file, and return ``j``."""
        assert self.lm is not None
        clean, ablation, values, folder, chunk, memory = self.sweep
        with frozen_heap():  # the worker's model, graph and clean pass outlive the prompt
            compute_prompt(self.lm, clean, ablation, values, j, folder, chunk=chunk, memory=memory)
        return j


_ACTORS: dict[tuple[str, str], list[Any]] = {}
"""The actors of this process's Ray session, by job and resources: a later sweep in the same
session (a Python session that initialised Ray itself, the tests) finds them with the model
loaded. :func:`~.distributed.release` ends them; :func:`~.distributed.connected` does on
leaving."""


def _actors(ray: Any, count: int, resources: dict[str, int]) -> list[Any]:
    """``count`` actors of ``resources`` each, reusing those this session started (those of
    other resources are ended first: they would hold CPUs the new ones wait for)."""
    key = (ray.get_runtime_context().get_job_id(), repr(sorted(resources.items())))
    if set(_ACTORS) - {key}:
        release()
    found = _ACTORS.setdefault(key, [])
    actor = ray.remote(_Worker).options(**resources)
    found += [actor.remote() for _ in range(count - len(found))]
    return found[:count]


def release() -> None:
    """End the Ray actors this process started (and the models they hold)."""
    if not _ACTORS:
        return
    ray = _ray()
    job = ray.get_runtime_context().get_job_id() if ray.is_initialized() else None
    for (session, _), actors in _ACTORS.items():
        for a in actors if session == job else ():  # those of a session shut down are gone
            ray.kill(a)
    _ACTORS.clear()


@dataclass(frozen=True)
class RayShards:
    """Compute a sweep's missing prompts on Ray actors (the ``shard`` of
    :func:`~.sweep.run_sweep`); call it inside :func:`~.distributed.connected`.

    Attributes
    ----------
    recipe : ModelRecipe
        The model each actor loads.
    ablation : Ablation
        The sweep's ablation.
    folder : Path
        The ``measures/`` folder the files go to, reachable from every worker.
    chunk, memory : int, optional
        As for :func:`~.sweep.run_sweep`.
    workers : int, optional
        The number of actors; default, and at most, one per ``recipe.threads`` CPUs of the
        cluster (one per GPU for a CUDA device), never more than there are prompts.
    """

    recipe: ModelRecipe
    ablation: Ablation
    folder: Path
    chunk: int | None = None
    memory: int | None = None
    workers: int | None = None

    def __call__(self, clean: CleanRun, missing: list[int]) -> Iterator[int]:
        """Compute prompts ``missing`` of ``clean``; yields each index as its file is written.

        Raises
        ------
        ScmnetError
            The error a worker raised, with its own text (a :class:`SettingsMismatch` if a
            worker's model is not the driver's, say); files already written stay.
        WorkerFailed
            If a worker died; the files written so far stay, and the next run resumes.
        """
        if not missing:
            return
        ray = _ray()
        from ray.util import ActorPool

        gpu = torch.device(self.recipe.device).type == "cuda"
        each, count = placement(
            self.recipe.device, self.recipe.threads, self.workers, ray.cluster_resources()
        )
        recipe = self.recipe
        if gpu:  # each actor sees its own GPU as cuda
            recipe = ModelRecipe(
                recipe.source, "cuda", recipe.dtype, recipe.identity, recipe.threads
            )
        actors = _actors(ray, min(count, len(missing)), each)
        shipped = ray.put(clean)
        sweep = (recipe, shipped, self.ablation, str(self.folder), self.chunk, self.memory)
        finished = False
        try:
            _get(ray, [a.setup.remote(*sweep) for a in actors])
            pool = ActorPool(actors)
            done = pool.map_unordered(lambda a, j: a.compute.remote(j), missing)
            for _ in missing:
                yield _get(ray, None, lambda: next(done))
            finished = True
        finally:
            if not finished:  # a failure, or the driver stopped early: start afresh next time
                release()


def placement(
    device: str, threads: int, workers: int | None, cluster: Mapping[str, float]
) -> tuple[dict[str, int], int]:
    """The resources of each actor and how many actors, on a cluster of ``cluster`` resources.

    One actor per ``threads`` CPUs (per GPU for a CUDA device), at most ``workers``; an actor
    never asks for more than the cluster has, as one that cannot start waits forever.

    Raises
    ------
    InvalidArgument
        If ``device`` is a CUDA device and the cluster has no GPU.

    Examples
    --------
    >>> placement("cpu", 1, 2, {"CPU": 2.0})
    ({'num_cpus': 1}, 2)
    >>> placement("cpu", 4, None, {"CPU": 2.0})  # 4 threads on 2 CPUs: one actor of 2 CPUs
    ({'num_cpus': 2}, 1)
    >>> placement("cpu", 2, 8, {"CPU": 6.0})
    ({'num_cpus': 2}, 3)
    >>> placement("cuda:1", 1, None, {"CPU": 16.0, "GPU": 4.0})
    ({'num_gpus': 1, 'num_cpus': 0}, 4)
    """
    if torch.device(device).type == "cuda":
        gpus = int(cluster.get("GPU", 0))
        if gpus == 0:
            raise InvalidArgument(
                f"--device {device!r}: the Ray cluster has no GPU; use --device cpu, or a "
                f"cluster with GPUs"
            )
        each, fit = {"num_gpus": 1, "num_cpus": 0}, gpus
    else:
        cpus = max(1, int(cluster.get("CPU", 1)))
        used = max(1, min(threads, cpus))
        each, fit = {"num_cpus": used}, max(1, cpus // used)
    return each, fit if workers is None else max(1, min(workers, fit))


def _get(ray: Any, refs: Any, call: Any = None) -> Any:
    """``ray.get(refs)`` (or ``call()``), a worker's error re-raised as the error it raised."""
    try:
        return call() if call is not None else ray.get(refs)
    except ray.exceptions.RayTaskError as e:
        cause = getattr(e, "cause", None)
        if isinstance(cause, Exception):
            raise cause from None
        raise
    except ray.exceptions.RayActorError as e:
        raise WorkerFailed(
            f"a Ray worker died before it finished its prompt ({reason(e)}); the prompts "
            f"written so far stay in the output directory, and running again resumes there"
        ) from e
