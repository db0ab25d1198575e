"""Motif-activity estimators: the exact Kronecker-sum LMM and ridge regression tuned by GCV/LOO.

Both follow the scikit-learn estimator API and take M (genes x motifs) and Y (genes x conditions).
"""

from regulas.lmm.kronsum import KronSumLMM
from regulas.lmm.likelihood import KronSumProblem
from regulas.lmm.ridge import RidgeGCV
from regulas.lmm.validation import LMMInputError

__all__ = ["KronSumLMM", "KronSumProblem", "LMMInputError", "RidgeGCV"]
