"""Running a traced graph, exactly and incrementally, whatever captured it.

* :mod:`~scmnet.tracing.engine.executor` -- an interpreter of the graph with values clamped
  or overridden, so that only the descendants of an intervention are recomputed;
* :mod:`~scmnet.tracing.engine.devices` -- a model on several devices (a device map): each
  operation on its parameters' device, offloaded weights read from where they are stored;
* :mod:`~scmnet.tracing.engine.patching` -- intervention values fitted to their variables;
* :mod:`~scmnet.tracing.engine.positions` -- for an intervention at position t of a causal
  sequence model, the plan that recomputes only positions t:;
* :mod:`~scmnet.tracing.engine.staircase` -- the one run plan of every intervened run: rows
  join a batch where their intervention sits;
* :mod:`~scmnet.tracing.engine.batched` -- many intervention sets as the rows of one batched
  run, where a probe shows that the rows of a batch stay apart.
"""
