"""Per-event machine learning for splicing studies (regulAS pipelines), over numpy arrays.

No Dask, database or Zarr here: the splicing workload hands blocks of events to
:func:`evaluate_block` and stores what it returns.

The names below are imported on first use (PEP 562): the splicing workload imports
:mod:`regulas.splicing.pipelines` to read a config, and importing this package must not
import scikit-learn and SciPy (:mod:`regulas.splicing.evaluate`, ``metrics``) for that.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from regulas.core.lazy import lazy_attributes

if TYPE_CHECKING:
    from regulas.splicing.evaluate import BlockInputError, EventFits, evaluate_block
    from regulas.splicing.metrics import METRICS, regression_metrics
    from regulas.splicing.pipelines import PipelineSpec

#: public name -> the module of this package defining it
_MODULES = {
    "BlockInputError": "evaluate",
    "EventFits": "evaluate",
    "evaluate_block": "evaluate",
    "METRICS": "metrics",
    "regression_metrics": "metrics",
    "PipelineSpec": "pipelines",
}

__getattr__ = lazy_attributes(__name__, _MODULES)

__all__ = ["METRICS", "BlockInputError", "EventFits", "PipelineSpec", "evaluate_block", "regression_metrics"]
