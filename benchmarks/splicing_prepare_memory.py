"""Driver-side cost of preparing a splicing study: load + check the data, write the study's Zarr inputs.

Runs what ``regulas run`` does in the driver before the first task (``check_inputs``,
``data_fingerprint``, ``prepare``), on a config and its overrides, with the arrays in a
fresh ``store.root``; no task runs. Measure peak memory with ``/usr/bin/time -v``::

    /usr/bin/time -v python benchmarks/splicing_prepare_memory.py configs/splicing_tcga.yaml \
        store.root=/tmp/prep experiment.block_size=1000

Prints one JSON line: seconds per step, the data shape, the fingerprint and ``ru_maxrss``.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    from regulas.core.workload import StudyContext
    from regulas.store.arrays import StudyArrays
    from regulas.study import load_study

    spec = load_study(argv[0], argv[1:])
    workload = spec.workload
    t0 = time.monotonic()
    workload.check_inputs(spec.seed)
    t1 = time.monotonic()
    fingerprint = workload.data_fingerprint(spec.seed)
    t2 = time.monotonic()
    arrays = StudyArrays(Path(spec.store.arrays_path), spec.study.name)
    prepared = workload.prepare(StudyContext(name=spec.study.name, root_seed=spec.seed, arrays=arrays))
    t3 = time.monotonic()
    y = arrays.open("Y")
    print(json.dumps({
        "config": argv[0],
        "overrides": argv[1:],
        "check_inputs_s": round(t1 - t0, 2),
        "data_fingerprint_s": round(t2 - t1, 2),
        "prepare_s": round(t3 - t2, 2),
        "total_s": round(t3 - t0, 2),
        "Y_shape": list(y.shape),
        "Y_chunks": list(y.chunks),
        "fingerprint": fingerprint,
        "same_fingerprint": fingerprint == prepared,
        "ru_maxrss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "loadavg": os.getloadavg(),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
