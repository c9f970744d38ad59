"""Getting a graph out of a model: capture, check and index it once.

* :mod:`~scmnet.tracing.capture.frontends` -- ``torch.fx`` or ``torch.export`` turns a module
  and example inputs into one executable graph (a :class:`~.frontends.Capture`);
* :mod:`~scmnet.tracing.capture.cleanup` -- no-op conversions dropped, random operations and
  in-place state changes refused;
* :mod:`~scmnet.tracing.capture.calls` -- which operations each module call computed (module
  paths are matched with the globs of :mod:`~scmnet.tracing.capture._glob`);
* :mod:`~scmnet.tracing.capture.collapse` -- which nodes depend on input values, and what a
  chosen node reads through the others;
* :mod:`~scmnet.tracing.capture.build` -- the graph verified against the eager model and
  indexed into a :class:`~.source.TraceSource` (:mod:`~scmnet.tracing.capture.source`: the
  trace, its contexts and its cached clean runs), described by the
  :mod:`~scmnet.tracing.capture.records`.

The graph runs on :mod:`scmnet.tracing.engine`; :mod:`scmnet.tracing.variables` chooses the
variables on it.
"""
