"""Motif-activity estimators: the exact Kronecker-sum LMM and ridge regression tuned by GCV/LOO.

Both follow the scikit-learn estimator API and take M (genes x motifs) and Y (genes x conditions).
The estimators are imported on first use, so that :mod:`regulas.lmm.structures` (the registry
of covariance structures, which config checks read) and :mod:`regulas.lmm.cost` (what a fit
will cost: ``estimate_fit_cost``, ``check_fit_cost``) load without scipy's optimisers or
scikit-learn.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from regulas.lmm.validation import LMMInputError

if TYPE_CHECKING:
    from regulas.lmm.cost import check_fit_cost, estimate_fit_cost
    from regulas.lmm.kronsum import KronSumLMM
    from regulas.lmm.likelihood import KronSumProblem
    from regulas.lmm.ridge import RidgeGCV

_LAZY = {
    "KronSumLMM": "regulas.lmm.kronsum",
    "KronSumProblem": "regulas.lmm.likelihood",
    "RidgeGCV": "regulas.lmm.ridge",
    "estimate_fit_cost": "regulas.lmm.cost",
    "check_fit_cost": "regulas.lmm.cost",
}

__all__ = ["KronSumLMM", "KronSumProblem", "LMMInputError", "RidgeGCV", "check_fit_cost", "estimate_fit_cost"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
