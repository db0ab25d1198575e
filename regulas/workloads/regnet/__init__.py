"""The regnet workload: regNet's motif-activity simulation benchmark (science in
:mod:`regulas.sim` and :mod:`regulas.lmm`)."""

from regulas.workloads.regnet.workload import RegnetConfig, RegnetWorkload

__all__ = ["RegnetConfig", "RegnetWorkload"]
