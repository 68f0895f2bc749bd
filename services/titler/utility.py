"""Which catalog model names conversations."""

from __future__ import annotations

from services.runtime.catalog import Catalog, CatalogError, ModelEntry

__all__ = ["utility_entry"]


def utility_entry(catalog: Catalog, name: str | None) -> ModelEntry | None:
    """The model named by the setting, else the catalog's first utility model.

    None when no name is set and the catalog has no utility model: titles then come
    from the fallback alone, rather than the titler refusing to start.
    """
    if name is None:
        return catalog.utility_model()
    entry = catalog.get(name)
    if entry is None:
        raise CatalogError(f"TOKENBUS_TITLER_MODEL names '{name}', which is not in the catalog")
    return entry
