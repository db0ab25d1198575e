"""Per-event machine learning for splicing studies (regulAS pipelines), over numpy arrays.

No Dask, database or Zarr here: the splicing workload hands blocks of events to
:func:`evaluate_block` and stores what it returns.
"""

from regulas.splicing.evaluate import BlockInputError, EventFits, evaluate_block
from regulas.splicing.metrics import METRICS, regression_metrics
from regulas.splicing.pipelines import PipelineSpec

__all__ = ["METRICS", "BlockInputError", "EventFits", "PipelineSpec", "evaluate_block", "regression_metrics"]
