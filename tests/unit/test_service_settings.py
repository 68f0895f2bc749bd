"""The settings every service shares, and the start-up check every main() makes."""

from __future__ import annotations

import pytest

from services.gateway.config import GatewaySettings
from services.generator.config import GeneratorSettings
from services.runtime.catalog import CatalogError
from services.runtime.startup import catalog_or_exit
from services.titler.config import TitlerSettings
from services.usage.config import UsageSettings

SERVICES = [GatewaySettings, GeneratorSettings, TitlerSettings, UsageSettings]


@pytest.mark.parametrize("settings", SERVICES)
def test_one_variable_points_every_service_at_the_bus_and_the_catalog(
    settings: type[GatewaySettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOKENBUS_NATS_URL", "nats://bus:4222")
    monkeypatch.setenv("TOKENBUS_CATALOG_PATH", "/etc/tokenbus/catalog.toml")
    loaded = settings()
    assert loaded.nats_url == "nats://bus:4222"
    assert str(loaded.catalog_path) == "/etc/tokenbus/catalog.toml"


def test_a_services_own_variable_wins_and_no_other_setting_is_shared(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TOKENBUS_NATS_URL", "nats://bus:4222")
    monkeypatch.setenv("TOKENBUS_GENERATOR_NATS_URL", "nats://own:4222")
    monkeypatch.setenv("TOKENBUS_MAX_IN_FLIGHT", "7")
    generator, usage = GeneratorSettings(), UsageSettings()
    assert (generator.nats_url, usage.nats_url) == ("nats://own:4222", "nats://bus:4222")
    assert generator.max_in_flight == 256
    assert (generator.metrics_port, usage.metrics_port) == (9101, 9103)


def test_a_wrong_catalog_stops_the_start_with_code_2(caplog: pytest.LogCaptureFixture) -> None:
    def unreadable() -> None:
        raise CatalogError("catalog.toml:3: model 'x': unknown fallback 'y'")

    with pytest.raises(SystemExit) as stopped:
        catalog_or_exit("generator", unreadable)
    assert stopped.value.code == 2
    assert caplog.records[-1].name == "tokenbus.generator"
    assert "refusing to start" in caplog.records[-1].getMessage()
