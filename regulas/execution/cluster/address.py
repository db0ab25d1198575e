"""Connect to a Dask scheduler that is already running; it is left running at the end."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from regulas.core.errors import ClusterError, ConfigError
from regulas.execution.cluster.base import ClusterBackend, ClusterConfigBase

if TYPE_CHECKING:  # imported where the client connects: validating the config needs no Dask
    from distributed import Client


@dataclass(frozen=True)
class AddressClusterConfig(ClusterConfigBase):
    backend: str = "address"
    address: str = ""

    def check(self, prefix: str, source: str | None) -> None:
        if "://" not in self.address:
            raise ConfigError(
                f"expected a scheduler address such as tcp://host:8786 (given: {self.address!r})",
                key=f"{prefix}.address",
                source=source,
            )


class AddressBackend(ClusterBackend):
    name = "address"
    owns_workers = False
    config_class = AddressClusterConfig

    def wait_ready(self) -> Client:
        from distributed import Client

        cfg = self.config
        try:
            self.client = Client(cfg.address, timeout=cfg.startup_timeout_s)
            self.client.wait_for_workers(1, timeout=cfg.startup_timeout_s)
        except (OSError, TimeoutError) as exc:
            self.close()
            raise ClusterError(
                f"no Dask scheduler with workers reachable at {cfg.address} within {cfg.startup_timeout_s} s: {exc}"
            ) from exc
        return self.client

    def describe(self) -> str:
        return f"Dask scheduler at {self.config.address}"
