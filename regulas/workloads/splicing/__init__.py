"""The splicing workload: regulAS's splicing-regulome experiments (science in
:mod:`regulas.splicing` and :mod:`regulas.data`)."""

from regulas.workloads.splicing.workload import SplicingConfig, SplicingWorkload

__all__ = ["SplicingConfig", "SplicingWorkload"]
