"""Splicing-regulome datasets: loaders, checks and the :class:`SplicingData` container.

Loaders (configured as regulAS dataset nodes, ``_target_`` + keyword arguments):

- :class:`TableLoader`: features/targets/metadata tables (TSV/CSV(.gz), Parquet, HDF5, Zarr);
- :class:`PickleLoader`: regulAS's pickled DataFrame (only when named explicitly);
- :class:`JunctionPSILoader`: PSI computed from junction read counts;
- :class:`XenaLoader`: TCGA/GTEx expression in the UCSC Xena layout joined with PSI.

All accept the common options of :class:`LoadOptions` (RBP list, log transform, filters and
missing-value policies).
"""

from regulas.core.errors import DataError
from regulas.data.dataset import SplicingData
from regulas.data.junctions import JunctionPSILoader, psi_from_junctions
from regulas.data.loaders import Loader, PickleLoader, TableLoader
from regulas.data.options import LoadOptions
from regulas.data.tables import read_table, write_table
from regulas.data.xena import XenaLoader

__all__ = [
    "DataError",
    "JunctionPSILoader",
    "LoadOptions",
    "Loader",
    "PickleLoader",
    "SplicingData",
    "TableLoader",
    "XenaLoader",
    "psi_from_junctions",
    "read_table",
    "write_table",
]
