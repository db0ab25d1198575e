"""Typed sections shared by every study: ``study``, ``store``, ``execution`` and the base of
``cluster``.

The ``cluster`` section is typed by its backend's subclass of :class:`ClusterConfigBase`
(``regulas.execution.cluster``) and each workload types its own section.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from regulas.core.config.targets import PREFIX
from regulas.core.config.typed import positive
from regulas.core.errors import ConfigError

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")  # whole name: re.fullmatch (`$` lets "x\n" through)
#: hex digits of the data's digest a name derived from the data ends with (``name-0123456789``)
DATA_NAME_DIGITS = 10


@dataclass(frozen=True)
class StudySection:
    name: str
    workload: str
    description: str = ""
    # the run names the study ``<name>-<hex digits of its data and config's digest>`` once the data
    # is loaded (regulAS files: one experiment name, one study per data set); reports group by ``name``
    name_from_data: bool = False

    def check(self, prefix: str, source: str | None) -> None:
        longest = 128 - (DATA_NAME_DIGITS + 1 if self.name_from_data else 0)
        if not _NAME.fullmatch(self.name) or len(self.name) > longest:
            raise ConfigError(
                f"invalid study name (given: {self.name!r}); expected letters, digits, '_', '.', '-', at most "
                f"{longest} characters (it names a Zarr group and appears in file names)",
                key=f"{prefix}.name",
                source=source,
            )

    def with_data(self, digest: str) -> StudySection:
        """This section named after its data's digest (``name_from_data``); itself when already so named."""
        suffix = "-" + digest[:DATA_NAME_DIGITS]
        if not self.name_from_data or self.name.endswith(suffix):
            return self
        return dataclasses.replace(self, name=self.name + suffix)


#: what regulas itself keeps in store.root beside the database and the arrays
RESERVED_IN_ROOT = frozenset({"leases", "logs", "reports", ".regulas-probe", "regulas-store.json"})
#: files SQLite keeps beside the database file (WAL, shared memory, rollback journal)
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


@dataclass(frozen=True)
class StoreSection:
    root: str = "./regulas-out"
    db: str = "regulas.db"
    arrays: str = "arrays.zarr"

    @property
    def root_path(self) -> Path:
        try:
            return Path(self.root).expanduser().resolve()
        except RuntimeError as exc:  # "~nouser/x": no such user, or no home directory to expand "~" to
            raise ConfigError(
                f"cannot expand '~' in the store root (given: {self.root!r}): {str(exc).rstrip('.')}; expected an existing user's "
                "home (~ or ~name) or a path without ~",
                key="store.root",
            ) from None

    @property
    def db_path(self) -> Path:
        return self.root_path / self.db

    @property
    def arrays_path(self) -> Path:
        return self.root_path / self.arrays

    def check(self, prefix: str, source: str | None) -> None:
        for key in ("db", "arrays"):
            value = getattr(self, key)
            if not value or "/" in value or value in (".", ".."):
                raise ConfigError(
                    f"expected a plain file name inside store.root (given: {value!r})",
                    key=f"{prefix}.{key}",
                    source=source,
                )
            if value in RESERVED_IN_ROOT:
                raise ConfigError(
                    f"{value!r} is a name regulas keeps for itself in store.root; expected another name "
                    f"(reserved: {', '.join(sorted(RESERVED_IN_ROOT))})",
                    key=f"{prefix}.{key}",
                    source=source,
                )
        if self.arrays == self.db or any(self.arrays == self.db + side for side in SQLITE_SIDE_FILES):
            raise ConfigError(
                f"store.arrays ({self.arrays!r}) collides with the database file store.db ({self.db!r}) or the files "
                "SQLite keeps beside it; expected another name, e.g. arrays.zarr",
                key=f"{prefix}.arrays",
                source=source,
            )
        try:
            root = self.root_path
        except ConfigError as exc:  # the property names no source: name the config's
            raise ConfigError(exc.message, key=f"{prefix}.root", source=source) from None
        if root.exists() and not root.is_dir():
            raise ConfigError(
                f"store root exists but is not a folder (given: {self.root!r})", key=f"{prefix}.root", source=source
            )


@dataclass(frozen=True)
class ExecutionSection:
    max_in_flight: int | None = None
    max_attempts: int = 3
    commit_every_s: float = 1.0
    commit_every_rows: int = 200_000
    progress: Literal["auto", "bar", "log", "none"] = "auto"
    progress_every_s: float = 10.0
    lease_timeout_s: float = 60.0
    # a task running longer is cancelled and run again elsewhere (an attempt); None: automatic,
    # 10 x the median duration of its kind's finished tasks once 5 finished (>= 60 s); 0: no limit
    task_timeout_s: float | None = None
    allow_targets: list[str] = field(default_factory=list)  # module prefixes _target_ may name, beyond the defaults

    def check(self, prefix: str, source: str | None) -> None:
        for key in ("max_in_flight", "max_attempts", "commit_every_rows", "progress_every_s", "lease_timeout_s"):
            positive(getattr(self, key), f"{prefix}.{key}", source)
        for i, module in enumerate(self.allow_targets):
            if not PREFIX.fullmatch(module):
                raise ConfigError(
                    f"not a module prefix (given: {module!r}); expected a dotted module name such as mypkg or mypkg.models",
                    key=f"{prefix}.allow_targets[{i}]",
                    source=source,
                )
        positive(self.commit_every_s, f"{prefix}.commit_every_s", source, allow_zero=True)
        positive(self.task_timeout_s, f"{prefix}.task_timeout_s", source, allow_zero=True)


@dataclass(frozen=True)
class ClusterConfigBase:
    """What every cluster backend's section has; backends subclass it with their own keys."""

    backend: str
    startup_timeout_s: float = 60.0
    blas_threads: int = 1  # BLAS/OpenMP threads a task may use on its worker (threadpoolctl)
    # Dask's distributed.scheduler.worker-ttl for the schedulers regulas starts: a worker silent
    # this long is restarted or removed and its tasks run elsewhere (regulas.execution.stalls)
    worker_ttl_s: float = 30.0
