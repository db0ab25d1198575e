"""regulas: splicing-regulome and motif-activity studies on Dask, Zarr and SQLite."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("regulas-hpc")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
