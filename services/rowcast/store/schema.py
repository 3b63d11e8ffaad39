"""Names and family settings of every rowcast table, and their creation."""

from __future__ import annotations

from rowcast.core.keys import estimated_row_bytes, prediction_split_keys, split_keys
from rowcast.core.signature import Signature
from rowcast.store.admin import NAMESPACE, Family, TableAdmin

MODELS = f"{NAMESPACE}:models"
VERSIONS = f"{NAMESPACE}:versions"
ACTIVATIONS = f"{NAMESPACE}:activations"
ARTIFACTS = f"{NAMESPACE}:artifacts"
OPERATIONS = f"{NAMESPACE}:operations"
AUDIT = f"{NAMESPACE}:audit"
#: Revoked tokens (security/tokens.py): tiny, re-read by every server every few seconds.
REVOCATIONS = f"{NAMESPACE}:revocations"
#: Data sets people bring (store/datasets.py): an info row each and their content in chunks.
DATASETS = f"{NAMESPACE}:datasets"
AUDIT_BY_SUBJECT = f"{NAMESPACE}:audit_by_subject"
AUDIT_BY_VERSION = f"{NAMESPACE}:audit_by_version"
AUDIT_BY_KEY = f"{NAMESPACE}:audit_by_key"
AUDIT_AUGMENTED = f"{NAMESPACE}:audit_augmented"
#: Index tables of the audit (layouts in rowcast.core.keys), all one family `i`.
AUDIT_INDEXES = (AUDIT_BY_SUBJECT, AUDIT_BY_VERSION, AUDIT_BY_KEY, AUDIT_AUGMENTED)

#: The registry row that holds the activation generation counter.
GENERATION_ROW = b"\x00registry"

#: Column families.
PRED_FAMILY = "p"
MODEL_FAMILY = "m"
ALIAS_FAMILY = "a"
VERSION_FAMILY = "v"
HISTORY_FAMILY = "h"
DECISION_FAMILY = "d"
AUGMENT_FAMILY = "g"
INDEX_FAMILY = "i"

#: Audit tables are salted and pre-split like prediction tables.
AUDIT_SALT_BUCKETS = 16


def prediction_table(model: str, version: int) -> str:
    return f"{NAMESPACE}:pred_{model}_v{version}"


def ensure_schema(admin: TableAdmin, *, timeout_s: float) -> None:
    """Create the namespace and the shared tables if missing (idempotent; blocking). Each table
    change ends within `timeout_s` (admin.DDL_TIMEOUT_S suits start-up)."""
    admin.ensure_namespace(timeout_s=timeout_s)
    # The registry is tiny and read on every activation check: keep it in memory.
    admin.create(
        MODELS,
        [Family(MODEL_FAMILY, in_memory=True), Family(ALIAS_FAMILY, in_memory=True)],
        timeout_s=timeout_s,
    )
    admin.create(VERSIONS, [Family(VERSION_FAMILY, in_memory=True)], timeout_s=timeout_s)
    admin.create(ACTIVATIONS, [Family(HISTORY_FAMILY)], timeout_s=timeout_s)
    # Model files: read rarely (materialise, verify), so no block cache.
    admin.create(ARTIFACTS, [Family("f", block_cache=False), Family("m")], timeout_s=timeout_s)
    admin.create(OPERATIONS, [Family("o")], timeout_s=timeout_s)
    admin.create(REVOCATIONS, [Family("r", in_memory=True)], timeout_s=timeout_s)
    admin.create(DATASETS, [Family("m"), Family("f", block_cache=False)], timeout_s=timeout_s)
    # Augmentations keep their history as separate qualifiers, so one version per cell is enough.
    admin.create(
        AUDIT,
        [Family(DECISION_FAMILY), Family(AUGMENT_FAMILY)],
        split_keys(AUDIT_SALT_BUCKETS),
        timeout_s=timeout_s,
    )
    for index in AUDIT_INDEXES:
        admin.create(
            index, [Family(INDEX_FAMILY)], split_keys(AUDIT_SALT_BUCKETS), timeout_s=timeout_s
        )


def create_prediction_table(
    admin: TableAdmin,
    model: str,
    version: int,
    buckets: int,
    signature: Signature,
    *,
    timeout_s: float,
) -> str:
    """Create a version's table, pre-split for its grid (core.keys.prediction_split_keys),
    with the settings' `region_replication` (read replicas; the registry and audit tables keep
    one), within `timeout_s` (blocking)."""
    table = prediction_table(model, version)
    splits = prediction_split_keys(
        buckets,
        signature.cardinalities[0],
        signature.grid_size,
        estimated_row_bytes(len(signature.features)),
    )
    admin.create(
        table,
        [Family(PRED_FAMILY)],
        splits,
        timeout_s=timeout_s,
        region_replication=admin.settings.region_replication,
    )
    return table
