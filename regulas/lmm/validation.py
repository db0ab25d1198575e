"""Input checks shared by the LMM and ridge estimators: one clear message before any work."""

from __future__ import annotations

from typing import Any

import numpy as np

from regulas.core.errors import RegulasError


class LMMInputError(RegulasError, ValueError):
    """An estimator was given data or options it cannot use; the message names which and why."""


def check_matrix(name: str, value: Any, *, ndim: int = 2) -> np.ndarray:
    """``value`` as a finite float64 array of ``ndim`` dimensions, or LMMInputError naming ``name``."""
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise LMMInputError(f"{name} must be a numeric array ({exc})") from None
    if ndim == 2 and a.ndim == 1:
        a = a[:, None]
    if a.ndim != ndim:
        raise LMMInputError(f"{name} must have {ndim} dimensions; got shape {a.shape}")
    if a.size == 0:
        raise LMMInputError(f"{name} is empty (shape {a.shape})")
    bad = ~np.isfinite(a)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise LMMInputError(
            f"{name} contains {int(bad.sum())} non-finite value(s) (NaN or inf), first at index {where}; "
            "remove or impute them before fitting"
        )
    return a


def check_design(M: Any, Y: Any) -> tuple[np.ndarray, np.ndarray]:
    """M (G x T) and Y (G x P) as finite arrays with the same number of rows (genes)."""
    M = check_matrix("M (genes x motifs)", M)
    Y = check_matrix("Y (genes x conditions)", Y)
    if M.shape[0] != Y.shape[0]:
        raise LMMInputError(
            f"M and Y must have the same number of rows (genes): M has shape {M.shape}, Y has shape {Y.shape}"
        )
    if M.shape[0] < 2:
        raise LMMInputError(f"need at least 2 genes (rows); got {M.shape[0]}")
    return M, Y


def check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise LMMInputError(f"unknown {name} {value!r}; expected one of {', '.join(map(repr, allowed))}")
    return str(value)
