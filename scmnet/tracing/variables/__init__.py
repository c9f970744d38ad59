"""Choosing the variables of a trace, and the causal graph on them.

* :mod:`~scmnet.tracing.variables.selectors` -- which nodes are variables: typed selectors
  (:class:`~scmnet.tracing.ByPath`, :class:`~scmnet.tracing.ByType`,
  :class:`~scmnet.tracing.ByPredicate`, :class:`~scmnet.tracing.Default`) resolved to stable,
  readable names;
* :mod:`~scmnet.tracing.variables.network` -- the trace with its variables chosen
  (:class:`~scmnet.tracing.TracedNetwork`): their parents, records and causal graph.
"""
