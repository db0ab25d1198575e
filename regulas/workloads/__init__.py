"""regulas's own workloads, registered in the ``regulas.workloads`` entry-point group:
``demo``, ``noop``, ``regnet`` and ``splicing``. Each declares its config section, tasks,
tables, arrays and reports; see :mod:`regulas.core.workload`."""
