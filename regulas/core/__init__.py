"""The bottom layer: task identity and hashing (``hashing``, ``task``), the workload and
report contracts (``workload``, ``report``), the validated study (``spec``), the workload
registry (``registry``), errors and config loading (``config``). Nothing here imports any
other part of regulas."""
