"""The model catalog refuses what cannot be right, naming the line at fault."""

from __future__ import annotations

import pytest

from services.runtime.catalog import CatalogError, load_catalog, parse_catalog

GOOD = """
[models."fast"]
provider = "openai-compatible"
base_url = "${LOCAL}/v1"
upstream_model = "m"
fallbacks = ["careful"]

[models.careful]
provider = "anthropic"
upstream_model = "claude"
api_key_env = "ANTHROPIC_API_KEY"
price_input_per_mtok = 1.0
price_output_per_mtok = 5.0
"""


def test_a_good_catalog_loads_with_prices_and_urls() -> None:
    catalog = parse_catalog(GOOD)
    fast = catalog.models["fast"]
    assert fast.resolved_base_url({"LOCAL": "http://127.0.0.1:9"}) == "http://127.0.0.1:9/v1"
    careful = catalog.models["careful"]
    assert careful.resolved_base_url({}) == "https://api.anthropic.com"
    assert careful.cost(1_000_000, 200_000) == pytest.approx(2.0)


def test_the_packaged_default_catalog_loads_and_needs_no_keys() -> None:
    catalog = load_catalog()
    catalog.check_keys({})
    providers = {m.provider for m in catalog.models.values()}
    assert {"openai-compatible", "anthropic"} <= providers
    assert catalog.utility_model() is not None


@pytest.mark.parametrize(
    ("change", "line", "words"),
    [
        (('provider = "anthropic"', 'provider = "mistery"'), 9, "provider"),
        (("price_input_per_mtok = 1.0", "price_input_per_mtok = -1.0"), 12, "greater than"),
        (('fallbacks = ["careful"]', 'fallbacks = ["nowhere"]'), 6, "unknown fallback"),
        (('api_key_env = "ANTHROPIC_API_KEY"', 'fallbacks = ["fast"]'), 6, "fallback cycle"),
        (('base_url = "${LOCAL}/v1"', ""), 2, "base_url"),
    ],
)
def test_a_wrong_catalog_is_refused_with_the_line_at_fault(
    change: tuple[str, str], line: int, words: str
) -> None:
    text = GOOD.replace(*change)
    with pytest.raises(CatalogError) as refused:
        parse_catalog(text, "catalog.toml")
    assert f"catalog.toml:{line}:" in str(refused.value)
    assert words in str(refused.value)


def test_a_missing_key_is_named() -> None:
    with pytest.raises(CatalogError, match=r"ANTHROPIC_API_KEY"):
        parse_catalog(GOOD).check_keys({})


def test_a_base_url_variable_that_is_not_set_is_named() -> None:
    with pytest.raises(CatalogError, match=r"LOCAL"):
        parse_catalog(GOOD).models["fast"].resolved_base_url({})


def test_broken_toml_is_refused() -> None:
    with pytest.raises(CatalogError, match=r"catalog.toml"):
        parse_catalog("[models.x\nprovider=", "catalog.toml")
