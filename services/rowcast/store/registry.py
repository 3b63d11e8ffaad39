"""The model registry in HBase, split by responsibility (each store is its own module):

- `ModelStore` (store/models.py): registered models and the registry generation;
- `VersionStore` (store/versions.py): version numbers, states, metrics, claims, watermarks;
- `AliasStore` (store/aliases.py): aliases, activations and their history, retirement;
- `DatasetStore` (store/datasets.py): the data sets models are trained and evaluated on.

`Registry` only bundles the four over one HBase client, for the jobs that need several.
"""

from __future__ import annotations

from dataclasses import dataclass

from rowcast.store.aliases import AliasStore
from rowcast.store.client import HBaseClient
from rowcast.store.datasets import DatasetStore
from rowcast.store.models import ModelStore
from rowcast.store.versions import VersionStore


@dataclass(frozen=True)
class Registry:
    """The registry stores over one HBase client."""

    models: ModelStore
    versions: VersionStore
    aliases: AliasStore
    datasets: DatasetStore

    @classmethod
    def over(cls, client: HBaseClient) -> Registry:
        return cls(
            ModelStore(client), VersionStore(client), AliasStore(client), DatasetStore(client)
        )
