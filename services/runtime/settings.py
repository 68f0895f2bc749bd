"""What every service's settings share: the bus, the catalog, the log level, /metrics.

Each service subclasses `ServiceSettings` with its own `env_prefix`
(TOKENBUS_GATEWAY_, TOKENBUS_GENERATOR_ ...). The bus and the catalog are usually
the same for all of them, so they are also read from one shared variable each
(TOKENBUS_NATS_URL, TOKENBUS_CATALOG_PATH); a service's own prefixed variable
wins over the shared one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
)

__all__ = ["SHARED_ENV", "ServiceSettings", "WorkerSettings"]

SHARED_PREFIX = "TOKENBUS_"
# The fields one variable sets for every service at once, and that variable.
SHARED_ENV = {"nats_url": "TOKENBUS_NATS_URL", "catalog_path": "TOKENBUS_CATALOG_PATH"}


class _SharedEnv(EnvSettingsSource):
    """The shared variables only: TOKENBUS_MAX_IN_FLIGHT must not set every service's."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls, env_prefix=SHARED_PREFIX)

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if field_name not in SHARED_ENV:
            return None, field_name, False
        return super().get_field_value(field, field_name)


class ServiceSettings(BaseSettings):
    nats_url: str = "nats://127.0.0.1:4222"
    catalog_path: Path | None = Field(
        default=None,
        description="Model catalog (TOML); the packaged default runs on the local model",
    )
    log_level: str = "INFO"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Constructor arguments, then the service's own variables, then the shared ones.
        return (
            init_settings,
            env_settings,
            _SharedEnv(settings_cls),
            dotenv_settings,
            file_secret_settings,
        )


class WorkerSettings(ServiceSettings):
    """A bus consumer: it serves /metrics on a port of its own (each subclass sets its default)."""

    metrics_host: str = Field(
        default="127.0.0.1", description="Address of /metrics: 0.0.0.0 in a container"
    )
    metrics_port: int = Field(
        default=9100, ge=0, le=65535, description="Port of /metrics (Prometheus); 0: none"
    )
