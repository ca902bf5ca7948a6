"""Per-environment resources, chosen in one place from ``Settings``."""

from __future__ import annotations

from dagster_duckdb import DuckDBResource

from snoiq_assets.defs.io_manager import PartitionedParquetIOManager
from snoiq_assets.defs.models.resources import mlflow_resource
from snoiq_assets.defs.store import ObjectStoreResource
from snoiq_assets.lib import duckfile
from snoiq_assets.settings import Settings


def build_resources(settings: Settings) -> dict[str, object]:
    """Every resource the code location uses, for the active profile."""
    store = ObjectStoreResource.from_settings(settings)
    return {
        "store": store,
        "io_manager": PartitionedParquetIOManager(store=store),
        "duckdb": DuckDBResource(database=str(settings.duckdb_path), connection_config=duckfile.connection_config()),
        "mlflow": mlflow_resource(settings),
    }
