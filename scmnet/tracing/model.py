"""A traced network as a causal model: :class:`TracedModel`.

A :class:`TracedModel` implements the :class:`~scmnet.CausalModel` protocol for an
``nn.Module``: the inputs of the network are its exogenous variables U, the chosen activations
(:mod:`scmnet.tracing.variables`) its endogenous variables V, and every other operation belongs to
the mechanism of the variables downstream of it. So :func:`~scmnet.do`,
:func:`~scmnet.total_effect`, :func:`~scmnet.direct_effect` and
:func:`~scmnet.indirect_effect` work on it unchanged.

A context is a mapping from input names to tensors (``{"input_ids": ids}``). Evaluation is exact
and incremental:

* the **clean run** of a context (no interventions) executes the whole graph once; it is cached
  (:class:`~scmnet.tracing.capture.source.TraceSource`), storing the variables and what
  cannot be recomputed cheaply, and recomputing the rest when read
  (:mod:`~scmnet.tracing.engine.run_values`);
* an **intervened run** recomputes only the graph nodes downstream of the intervened
  variables (and only those needed for the requested ``outputs``), reading everything else
  from the clean cache, with each intervened value substituted at its variable's node.

* **batched** runs (:meth:`TracedModel.evaluate_many`) evaluate many intervention sets as the
  rows of one execution of the graph, where the graph keeps the rows of a batch apart
  (:mod:`scmnet.tracing.engine.batched`), and one by one where it does not.

The result equals re-running the eager model with the same values patched in by forward hooks.
Returned tensors are shared with the cache: treat them as read-only.

Examples
--------
The erasure motif of Section 3.3 written as a network (eq. 31), traced:

>>> import torch
>>> import scmnet as sn
>>> from scmnet.tracing import trace
>>> m = trace(sn.toys.erasure_module(), torch.zeros(()))
>>> m.exogenous, m.endogenous
(('u',), ('x', 'f', 'y'))
>>> u = {"u": torch.tensor(2.0)}
>>> sn.total_effect(m, {"x": 0.5}, "y", context=u)
tensor(0.)
>>> sn.direct_effect(m, {"x": 0.5}, "y", context=u)
tensor(-1.5000)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import fx, nn

from scmnet.errors import (
    InvalidArgument,
    InvalidContext,
    InvalidOutcome,
    NonFiniteValue,
    unknown_node,
)
from scmnet.interventions import Interventions, Site
from scmnet.model import CausalModelBase, Context, Output, check_batching, output_names
from scmnet.outcome import LinearReadout, Outcome
from scmnet.tracing.capture.records import NodeRecord, TraceInfo
from scmnet.tracing.capture.source import INPUTS
from scmnet.tracing.engine.gradients import gradient_run
from scmnet.tracing.engine.indexing import RowIndex, put_rows
from scmnet.tracing.engine.patching import fit
from scmnet.tracing.engine.positions import Partial
from scmnet.tracing.engine.readouts import fold_readout
from scmnet.tracing.variables.network import TracedNetwork, build_network
from scmnet.tracing.variables.selectors import Selector

__all__ = ["TracedModel"]


class TracedModel(CausalModelBase):
    """A neural network as a structural causal model.

    Build one with :func:`~scmnet.trace`. It implements :class:`~scmnet.CausalModel`:
    :attr:`graph`, :attr:`exogenous` (the input names), :attr:`endogenous` (the variables, in
    topological order), :meth:`evaluate`, :meth:`evaluate_many`, :meth:`sample_contexts` and
    :meth:`intervene` (a new model sharing this one's trace and cache). Interventions may target
    an index of a variable, e.g. ``Site("model.layers.0.mlp", index=(slice(None), -1))`` for the
    last position. The nodes of :attr:`graph` also carry ``record`` (a
    :class:`~scmnet.tracing.NodeRecord`); an edge X -> V means that V's mechanism reads X through
    operations that are not variables.

    Examples
    --------
    >>> import torch
    >>> import scmnet as sn
    >>> from scmnet.tracing import trace
    >>> m = trace(sn.toys.self_repair_module(), torch.zeros(3))
    >>> m2 = sn.do(m, {"x": torch.zeros(3)})
    >>> sorted(m2.graph.predecessors("x")), m2.graph.nodes["x"]["intervention"]
    ([], 'x = Tensor')
    >>> m2.evaluate({"u": torch.tensor([1.0, 2.0, 3.0])}, outputs=["y"])
    {'y': tensor([1., 2., 3.])}
    """

    _terms = INPUTS

    def __init__(self, network: TracedNetwork, interventions: Interventions | None = None) -> None:
        super().__init__(network.graph, interventions)
        self._net = network
        self._finite: Mapping[fx.Node, Any] | None = None  # the last clean run checked finite

    # -- the CausalModel protocol (graph, interventions and intervene: CausalModelBase) ----------

    @property
    def exogenous(self) -> tuple[str, ...]:
        """The input names U."""
        return tuple(self._net.inputs)

    @property
    def endogenous(self) -> tuple[str, ...]:
        """The variable names V, in topological (graph) order."""
        return tuple(self._net.variables)

    def evaluate(
        self,
        context: Context,
        interventions: Interventions | Mapping[Any, Any] | None = None,
        *,
        outputs: Collection[Output] | None = None,
    ) -> dict[Any, Any]:
        """Values of the inputs and variables in ``context`` under ``interventions``.

        Parameters
        ----------
        context : mapping of str to tensor
            A value for every input (Python numbers and arrays are converted to tensors).
        interventions : mapping or Interventions, optional
            Applied on top of the interventions the model carries.
        outputs : collection of str or Site, optional
            Only compute and return these variables (and the operations they need). A
            :class:`~scmnet.Site` returns ``value[index]`` under the site as key, read from
            the recomputed positions alone where it can be (no whole value is rebuilt).

        Returns
        -------
        dict
            Name to tensor (shared with the cache: do not modify in place).

        Raises
        ------
        InvalidContext
            If the context misses an input, names an unknown one, or does not fit the trace.
        NodeNotFound
            If ``outputs`` or an intervention names an unknown node.
        InvalidIntervention
            If an intervention's index or value does not fit its variable.
        MechanismError
            If an operation fails; the message names the graph node and its module.

        Examples
        --------
        >>> import torch
        >>> import scmnet as sn
        >>> from scmnet.tracing import trace
        >>> m = trace(sn.toys.erasure_module(), torch.zeros(2))
        >>> m.evaluate({"u": torch.ones(2)}, {sn.Site("f", index=0): 5.0}, outputs=["y"])
        {'y': tensor([6., 0.])}
        """
        iv = self._merged(interventions)
        wanted = self._wanted(outputs)
        inputs, clean = self._clean(context)
        if not iv:
            return {o: self._read(o, inputs, clean, {}) for o in wanted}
        env = self._intervened(iv, wanted, clean, inputs)
        return {o: self._read(o, inputs, clean, env) for o in wanted}

    def evaluate_many(
        self,
        context: Context,
        interventions: Sequence[Interventions | Mapping[Any, Any] | None],
        *,
        outputs: Collection[Output] | None = None,
        batched: bool = True,
        chunk: int | None = None,
        memory: int | None = None,
    ) -> list[dict[Any, Any]]:
        """:meth:`evaluate` for several intervention sets in one context, batched where exact.

        The sets share one clean run of ``context``; an empty set is read from it. The others
        run as the rows of one batched execution of the graph
        (``scmnet.tracing.engine.batched``): the context is stacked along the leading batch
        axis, each block of rows carries one set's interventions, and only the descendants of
        the intervened variables run. Where that would not be exact -- the graph was
        specialised to the example's batch size, an operation mixes the rows of a batch, a
        variable has no batch axis -- the sets are evaluated one by one. :attr:`info`
        (``.batching``) records which path ran, and why.

        Parameters
        ----------
        context : mapping of str to tensor
            A value for every input; each needs a leading batch axis to be batched.
        interventions : sequence of mappings or Interventions
            The intervention sets, each applied on top of the interventions the model carries.
        outputs : collection of str, optional
            Only compute and return these variables.
        batched : bool
            ``False`` evaluates the sets one by one (the reference path).
        chunk : int, optional
            At most this many sets per batched execution, to bound memory (a batch holds
            ``chunk`` copies of every recomputed activation). The sets are ordered by their
            first intervened variable before they are cut into chunks, so a chunk recomputes
            only from its own depth on: where the arithmetic dominates (large models), chunks
            of the sets that intervene at the same layer save the recomputation that one batch
            of all layers would do. Default: all at once (the least overhead).
        memory : int, optional
            A budget in bytes for the activations one batched execution holds at once: a
            first chunk of a few sets measures what a set's row holds, and the others are cut
            to fit (temporaries inside one operation, and the clean run, come on top). With
            ``chunk``, the smaller of the two. Default: no budget.

        Returns
        -------
        list of dict
            One result per set, as :meth:`evaluate` returns it. Batched values equal the
            looped ones up to the order of floating-point operations, and are views of the
            batch (do not modify them in place).

        Raises
        ------
        InvalidArgument
            If ``chunk`` is not a positive int.
        InvalidContext, NodeNotFound, InvalidIntervention, MechanismError
            As :meth:`evaluate`, before anything runs where the sets can be checked up front.

        Examples
        --------
        >>> import torch
        >>> import scmnet as sn
        >>> from torch import nn
        >>> from scmnet.tracing import trace
        >>> _ = torch.manual_seed(0)
        >>> m = trace(nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1)).eval(),
        ...           torch.zeros(1, 2))
        >>> u = {"input": torch.randn(1, 2)}
        >>> sets = [{}, {sn.Site("1", index=(0, 1)): 0.0}, {"1": sn.scale(2.0)}]
        >>> many = m.evaluate_many(u, sets, outputs=["2"])
        >>> info = m.info.batching
        >>> info.path, info.sets, info.batched, info.runs
        ('batched', 3, 2, 1)
        >>> looped = m.evaluate_many(u, sets, outputs=["2"], batched=False)
        >>> m.info.batching.path, m.info.batching.reason
        ('looped', 'batched=False')
        >>> all(torch.allclose(a["2"], b["2"]) for a, b in zip(many, looped))
        True
        """
        wanted = self._wanted(outputs)
        inputs, clean, envs = self._run_sets(
            context, interventions, wanted, batched, chunk, memory, None
        )
        return [{o: self._read(o, inputs, clean, env) for o in wanted} for env in envs]

    def _run_sets(
        self,
        context: Context,
        interventions: Sequence[Interventions | Mapping[Any, Any] | None],
        wanted: Sequence[Output],
        batched: bool,
        chunk: int | None,
        memory: int | None,
        stacked: list[tuple[list[int], Any]] | None,
    ) -> tuple[dict[str, Any], Mapping[fx.Node, Any], list[Mapping[fx.Node, Any]]]:
        """Validate and fit the sets, then run them (batched where exact): the inputs, the
        clean run, and the values each set changes (see :meth:`Batcher.evaluate`)."""
        check_batching(chunk, memory)
        sets = [self._merged(iv) for iv in interventions]
        inputs, clean = self._clean(context)
        variables = self._net.variables
        fitted = [fit(iv, {v: clean[variables[v]] for v in iv.nodes}) for iv in sets]
        envs = self._net.source.batching.evaluate(
            inputs,
            clean,
            fitted,
            variables,
            [variables[w] for w in output_names(wanted) if w in variables],
            self._net.downstream,
            lambda i: self._intervened(sets[i], wanted, clean, inputs),
            batched=batched,
            chunk=chunk,
            memory=memory,
            stacked=stacked,
        )
        return inputs, clean, envs

    def evaluate_stacked(
        self,
        context: Context,
        interventions: Sequence[Interventions | Mapping[Any, Any] | None],
        *,
        outputs: Collection[Output],
        chunk: int | None = None,
        memory: int | None = None,
    ) -> dict[Any, Any]:
        """:meth:`evaluate_many` with each output stacked over the sets.

        The same computation, read without a mapping per set: each output's values come
        straight from the batch that computed them (a :class:`~scmnet.Site` output from the
        recomputed positions alone), which is what a sweep of many interventions wants.

        Returns
        -------
        dict
            Each output (name or site) to a tensor of shape ``(len(interventions), *shape)``.

        Examples
        --------
        >>> import torch
        >>> import scmnet as sn
        >>> from torch import nn
        >>> from scmnet.tracing import trace
        >>> _ = torch.manual_seed(0)
        >>> m = trace(nn.Sequential(nn.Linear(2, 3), nn.Tanh()).eval(), torch.zeros(1, 4, 2))
        >>> u = {"input": torch.randn(1, 4, 2)}
        >>> sets = [{sn.Site("0", index=(slice(None), -1)): float(v)} for v in range(3)]
        >>> last = sn.Site("1", index=(0, -1))
        >>> m.evaluate_stacked(u, sets, outputs=[last])[last].shape
        torch.Size([3, 3])
        """
        wanted = self._wanted(outputs)
        batches: list[tuple[list[int], Any]] = []
        inputs, clean, envs = self._run_sets(
            context, interventions, wanted, True, chunk, memory, batches
        )
        variables = self._net.variables
        batched = {i for group, _ in batches for i in group}
        result: dict[Any, Any] = {}
        # where each batch's rows go, copied once to each device an output is on (a device map
        # leaves each output on its layer's device)
        indexes: dict[torch.device, list[RowIndex]] = {}
        for o in wanted:  # the bookkeeping is host-side: no value is read back from a device
            name, index = (o.node, o.index) if isinstance(o, Site) else (o, None)
            base = self._read(o, inputs, clean, {})
            out = base.new_empty((len(envs), *base.shape))
            if out.device not in indexes:  # a batch's row j is the set group[run.order[j]]
                indexes[out.device] = [
                    RowIndex([g[r] for r in run.order], out.device) for g, run in batches
                ]
            node = variables.get(name)
            for (group, run), places in zip(batches, indexes[out.device], strict=True):
                found = None if node is None else run.stacked(node, index)
                changed = 0  # the batch's first rows changed the output, the others left it clean
                if found is not None:
                    rows, values = found
                    changed = len(rows)
                    put_rows(out, places.first(changed), values)
                if changed < len(group):
                    put_rows(out, places.after(changed), base)
            for i in sorted(set(range(len(envs))) - batched):  # rows that ran alone
                out[i] = self._read(o, inputs, clean, envs[i])
            result[o] = out
        return result

    def plan_outcome(
        self, outcome: Outcome, context: Context, sets: Sequence[Interventions]
    ) -> Outcome:
        """An outcome with the same values that is cheaper to read in this query.

        A :func:`~scmnet.linear_readout` of a linear layer's output is read from the layer's
        input, folded through its weights (``scmnet.tracing.engine.readouts``), unless an
        intervention of ``sets`` (or of this model) sets the variable read. The effect
        operators call this; any other outcome is returned as it is.

        Examples
        --------
        >>> import torch
        >>> import scmnet as sn
        >>> from torch import nn
        >>> from scmnet.tracing import trace
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 4)).eval()
        >>> m = trace(net, torch.zeros(1, 2))
        >>> y = sn.linear_readout(sn.Site("2", index=0), torch.ones(4))
        >>> u = {"input": torch.randn(1, 2)}
        >>> m.plan_outcome(y, u, []).of
        (Site(node='1', index=0),)
        >>> m.plan_outcome(y, u, [sn.interventions.normalize({"2": 0.0})]).of
        (Site(node='2', index=0),)
        """
        if not isinstance(outcome, LinearReadout):
            return outcome
        touched = {v for iv in (self._merged(None), *sets) for v in iv.nodes}
        _, clean = self._clean(context)
        return fold_readout(outcome, self._net.variables, self.graph_module, clean, touched)

    def sample_contexts(self, n: int, *, seed: int) -> list[dict[str, Any]]:
        """Draw ``n`` contexts, with replacement, from the data set given at trace time.

        The empirical distribution of the data set is P(u).

        Raises
        ------
        InvalidContext
            If the model was traced without a data set, or ``n`` is not positive.

        Examples
        --------
        >>> import torch
        >>> import scmnet as sn
        >>> from scmnet.tracing import trace
        >>> data = [{"u": torch.tensor(float(i))} for i in range(5)]
        >>> m = trace(sn.toys.erasure_module(), torch.zeros(()), dataset=data)
        >>> [float(c["u"]) for c in m.sample_contexts(3, seed=0)]
        [4.0, 3.0, 2.0]
        """
        if not isinstance(n, int | np.integer) or isinstance(n, bool) or n < 1:
            raise InvalidContext(f"the number of contexts must be a positive int, got {n!r}")
        data = self._net.dataset
        if not data:
            raise InvalidContext(
                "this traced model has no data set to draw contexts from; pass dataset=[...] "
                "(a sequence of contexts) to trace(), or give context=... to the effect "
                "functions"
            )
        rng = np.random.default_rng(seed)
        return [dict(data[int(i)]) for i in rng.integers(0, len(data), size=int(n))]

    # -- more about the trace -------------------------------------------------------------------

    @property
    def records(self) -> Mapping[str, NodeRecord]:
        """The :class:`~scmnet.tracing.NodeRecord` of every node of the causal graph."""
        return self._net.records

    @property
    def info(self) -> TraceInfo:
        """How the model was traced (front end, dropped no-ops, exactness on the example).

        Its ``batching`` field is the :class:`~scmnet.tracing.BatchingInfo` of the last
        :meth:`evaluate_many` call on this trace (shared with the intervened versions of this
        model).
        """
        source = self._net.source
        notes = source.info.notes + self._net.notes
        return dataclasses.replace(source.info, batching=source.batching.info, notes=notes)

    @property
    def outputs(self) -> tuple[str, ...]:
        """The variables that carry the model's outputs (e.g. the logits)."""
        return self._net.outputs

    @property
    def module(self) -> nn.Module:
        """The traced ``nn.Module``."""
        return self._net.source.model

    @property
    def graph_module(self) -> fx.GraphModule:
        """The ``torch.fx`` graph that runs."""
        return self._net.executor.graph_module

    @property
    def network(self) -> TracedNetwork:
        """The trace shared by this model and its intervened versions."""
        return self._net

    def parents(self, node: str) -> tuple[str, ...]:
        """The parents of ``node`` in the unintervened graph (inputs first)."""
        if node not in self._net.records:
            raise unknown_node(node, self._net.records, what="nodes")
        return self._net.records[node].parents

    def fx_node(self, name: str) -> fx.Node:
        """The graph node that carries the variable or input ``name``."""
        if name in self._net.variables:
            return self._net.variables[name]
        if name in self._net.inputs:
            return self._net.inputs[name]
        raise unknown_node(name, self._net.records, what="nodes")

    def gradients(
        self, context: Context, outcome: Outcome, wrt: Sequence[str]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """A scalar outcome and its gradient with respect to whole variables, in ``context``.

        One forward and one backward run of the graph (``scmnet.tracing.engine.gradients``):
        the basis of attribution patching, which estimates the effect of setting variable v
        from its clean value a to a' as ``((a' - a) * grad[v]).sum()``.

        Parameters
        ----------
        context : mapping of str to tensor
            A value for every input.
        outcome : Outcome
            A readout of one element.
        wrt : sequence of str
            Variables.

        Returns
        -------
        value : tensor
            The outcome in the clean run.
        gradients : dict of str to tensor
            ``d outcome / d v`` for each variable v of ``wrt``, of its value's shape: the total
            derivative, every later variable reacting to v (zeros for a variable the outcome
            does not depend on).

        Raises
        ------
        NodeNotFound
            If ``wrt`` or the outcome names an unknown variable.
        InvalidOutcome
            If the outcome is not one number.

        Examples
        --------
        The erasure motif (eq. 31): y = x + f with f = -x. A change of f reaches y directly:

        >>> import torch
        >>> import scmnet as sn
        >>> from scmnet.tracing import trace
        >>> m = trace(sn.toys.erasure_module(), torch.zeros(()))
        >>> y, grads = m.gradients({"u": torch.tensor(2.0)}, sn.Outcome(("y",), lambda y: y), ["f"])
        >>> float(y), float(grads["f"])
        (0.0, 1.0)
        """
        if isinstance(wrt, str):
            raise InvalidArgument(f"wrt must be a sequence of variable names; write [{wrt!r}]")
        variables = self._net.variables
        for name in [*wrt, *output_names(outcome.of)]:
            if name not in variables:
                raise unknown_node(name, variables, what="variables")
        inputs, clean = self._clean(context)
        targets = [variables[name] for name in wrt]
        reads = [variables[name] for name in output_names(outcome.of)]

        def readout(values: Sequence[Any]) -> torch.Tensor:
            by_output = {
                o: v if not isinstance(o, Site) or o.index is None else v[o.index]
                for o, v in zip(outcome.of, values, strict=True)
            }
            y = torch.as_tensor(outcome(by_output))
            if y.numel() != 1:
                raise InvalidOutcome(
                    f"gradients need an outcome of one number, got shape {tuple(y.shape)}; "
                    "read one element (e.g. one logit at one position)"
                )
            return y.reshape(())

        value, found = gradient_run(self._net.executor, inputs, targets, reads, readout)
        return value, {
            name: found[node] if node in found else torch.zeros_like(clean[node])
            for name, node in zip(wrt, targets, strict=True)
        }

    def clear_cache(self) -> None:
        """Forget the cached clean runs (shared with the intervened versions)."""
        self._net.source.clear_cache()

    def with_variables(
        self, variables: Selector | str | Sequence[Selector | str] | None
    ) -> TracedModel:
        """The same trace with other variables (an unintervened model; nothing is re-traced).

        Parameters
        ----------
        variables : Selector, str or sequence of them, or None
            As for :func:`~scmnet.trace`.

        Examples
        --------
        >>> import torch
        >>> from torch import nn
        >>> from scmnet.tracing import ByType, trace
        >>> m = trace(nn.Sequential(nn.Linear(2, 2), nn.ReLU()).eval(), torch.zeros(1, 2))
        >>> m.endogenous, m.with_variables(ByType(nn.Linear)).endogenous
        (('0', '1'), ('0', '1'))
        """
        return TracedModel(build_network(self._net.source, variables, self._net.dataset))

    def __repr__(self) -> str:
        return (
            f"TracedModel({type(self.module).__name__!r}, frontend={self.info.frontend!r}, "
            f"exogenous={list(self.exogenous)}, {len(self.endogenous)} endogenous "
            f"variables{self._do_label()})"
        )

    # -- helpers --------------------------------------------------------------------------------

    def _wanted(self, outputs: Collection[Output] | None) -> tuple[Output, ...]:
        if outputs is None:
            return (*self._net.inputs, *self._net.variables)
        if isinstance(outputs, str | Site):
            raise InvalidArgument(
                f"outputs must be a collection of names or sites, got {outputs!r}; "
                f"write [{outputs!r}]"
            )
        for name in output_names(outputs):
            if name not in self._net.records:
                raise unknown_node(name, self._net.records, what="nodes")
        return tuple(outputs)

    def _clean(self, context: Context) -> tuple[dict[str, Any], Mapping[fx.Node, Any]]:
        """The inputs and clean run of ``context`` (cached), checked to be finite.

        Raises
        ------
        NonFiniteValue
            At the first variable, in graph order, whose clean value has a NaN or infinity.
        """
        inputs, clean = self._net.source.clean(context, keep=self._net.variables.values())
        if self._finite is clean:  # the same cached clean run, already checked
            return inputs, clean
        position = self._net.executor.position
        checked = [
            (name, torch.isfinite(value).all())
            for name, node in sorted(self._net.variables.items(), key=lambda v: position[v[1]])
            if isinstance(value := clean[node], torch.Tensor) and value.is_floating_point()
        ]
        if checked:
            device = checked[0][1].device  # a model on several devices: gathered on one first
            flags = torch.stack([f.to(device) for _, f in checked]).cpu()  # one transfer
            if not bool(flags.all()):
                name = checked[int((~flags).nonzero()[0])][0]
                record = self._net.records[name]
                raise NonFiniteValue(
                    f"the clean run has a NaN or infinite value, first at the variable {name!r} "
                    f"({record.module_type or record.op}); every effect through it would be NaN "
                    f"or meaningless (a norm of an infinite value is exactly zero). Check the "
                    f"model's weights (torch.isfinite) and whether its activations overflow "
                    f"its dtype"
                )
        self._finite = clean
        return inputs, clean

    def _read(
        self,
        output: Output,
        inputs: Mapping[str, Any],
        clean: Mapping[fx.Node, Any],
        env: Mapping[fx.Node, Any],
    ) -> Any:
        """An output's value: a variable (or input) whole, or the part a site reads."""
        name, index = (output.node, output.index) if isinstance(output, Site) else (output, None)
        if name in inputs:
            value = inputs[name]
        else:
            node = self._net.variables[name]
            value = env[node] if node in env else clean[node]
        if isinstance(value, Partial):  # only a suffix of positions was recomputed
            return value.full() if index is None else value.at(index)
        return value if index is None else value[index]

    def _intervened(
        self,
        iv: Interventions,
        wanted: Sequence[Output],
        clean: Mapping[fx.Node, Any],
        inputs: Mapping[str, Any],
    ) -> dict[fx.Node, Any]:
        """Recompute what the interventions change, reading the rest from the clean run."""
        variables = self._net.variables
        fitted = fit(iv, {v: clean[variables[v]] for v in iv.nodes})
        batching = self._net.source.batching
        return batching.run_one(
            inputs,
            clean,
            fitted,
            variables,
            [variables[w] for w in output_names(wanted) if w in variables],
            self._net.downstream,
        )
