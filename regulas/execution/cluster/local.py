"""A dask LocalCluster: one worker process per core, one thread each, BLAS pinned."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from distributed import Client, LocalCluster

from regulas.core.config.typed import positive
from regulas.core.errors import ClusterError
from regulas.execution.cluster.base import ClusterBackend, ClusterConfigBase, blas_env, close_bounded, default_workers


@dataclass(frozen=True)
class LocalClusterConfig(ClusterConfigBase):
    backend: str = "local"
    n_workers: int | None = None
    threads_per_worker: int = 1
    memory_limit: str | int | None = "auto"
    dashboard_address: str | None = ":8787"
    blas_threads: int = 1

    def check(self, prefix: str, source: str | None) -> None:
        for key in ("n_workers", "threads_per_worker", "blas_threads", "startup_timeout_s"):
            positive(getattr(self, key), f"{prefix}.{key}", source)


class LocalBackend(ClusterBackend):
    name = "local"
    config_class = LocalClusterConfig

    def __init__(self, config: LocalClusterConfig) -> None:
        super().__init__(config)
        self.cluster: LocalCluster | None = None

    @property
    def n_workers(self) -> int:
        return self.config.n_workers or default_workers()

    def start(self) -> Client:
        cfg = self.config
        kwargs: dict[str, Any] = {}
        if cfg.memory_limit is not None:
            kwargs["memory_limit"] = cfg.memory_limit
        if cfg.dashboard_address is None:
            # without a dashboard the scheduler still serves HTTP (health, metrics) on
            # 8787 and warns when another cluster holds that port: any free port will do
            kwargs["scheduler_kwargs"] = {"dashboard_address": "127.0.0.1:0"}
        try:
            self.cluster = LocalCluster(
                n_workers=self.n_workers,
                threads_per_worker=cfg.threads_per_worker,
                processes=True,
                dashboard_address=cfg.dashboard_address,
                env=blas_env(cfg.blas_threads),
                silence_logs=40,
                **kwargs,
            )
            self.client = Client(self.cluster, timeout=cfg.startup_timeout_s)
            self.client.wait_for_workers(1, timeout=cfg.startup_timeout_s)
        except (OSError, TimeoutError) as exc:
            self.close()
            raise ClusterError(f"could not start a LocalCluster of {self.n_workers} workers: {exc}") from exc
        return self.client

    def dashboard_link(self) -> str | None:
        # the scheduler's HTTP server runs even with the dashboard off: ask the config
        return super().dashboard_link() if self.config.dashboard_address is not None else None

    def describe(self) -> str:
        return f"LocalCluster: {self.n_workers} worker processes x {self.config.threads_per_worker} thread"

    def close(self) -> None:
        super().close()
        if self.cluster is not None:
            close_bounded("the LocalCluster", self.cluster.close)
            self.cluster = None
