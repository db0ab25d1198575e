"""The prediction shared by the fitted motif-activity estimators (ridge, LMM)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

from regulas.lmm.validation import LMMInputError, check_matrix


class LinearPredictMixin:
    """``predict(M) = M coef_ + intercept_`` for an estimator with coef_ (T, P) and intercept_ (P,)."""

    coef_: np.ndarray
    intercept_: np.ndarray

    def predict(self, M: Any) -> np.ndarray:
        """M coef_ + intercept_ for motif scores M (n x T); returns n x P."""
        check_is_fitted(self, "coef_")
        M = check_matrix("M (genes x motifs)", M)
        if M.shape[1] != self.coef_.shape[0]:
            raise LMMInputError(f"M has {M.shape[1]} motif columns; the model was fitted with {self.coef_.shape[0]}")
        return np.asarray(M @ self.coef_ + self.intercept_)
