"""regulas-toy-workload: the smallest complete third-party workload for regulas.

``study.workload: toy`` runs :class:`regulas_toy.workload.ToyWorkload`: ``toy.n_tasks``
tasks, each drawing ``toy.width`` seeded normal values times ``toy.scale``, writing them
to its own row of the Zarr array ``toy_values`` and returning them as rows of the table
``toy_result`` (:mod:`regulas_toy.tables`). Its report writes ``toy_summary.csv``.
"""
