"""The verification gate refuses READY for the right reasons: each fault injected into a table
written as the workers write it (in the in-memory store) is caught and named."""

from __future__ import annotations

import asyncio
import math
from dataclasses import replace

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from rowcast.config import FidelityDrop, Settings
from rowcast.core.keys import cells_digest, chunk_digest, encode_double, key_matrix, split_rows
from rowcast.core.records import OutputKind, PredictionRow
from rowcast.core.signature import CategoricalFeature, NumericFeature, Signature
from rowcast.jobs.modelfile import Encoding
from rowcast.jobs.verify import HeldOut, TableScan, Verification, check
from rowcast.jobs.workers import grid_bins, score
from rowcast.store.memory import MemoryPredictions

TABLE = "gate_v3"
VERSION = 3
BUCKETS = 4
SIGNATURE = Signature(
    (
        NumericFeature("income", (25.0, 50.0, 75.0), (12.5, 37.5, 62.5, 87.5), 0.0, 100.0),
        CategoricalFeature("owner", ("yes", "no")),
        CategoricalFeature("colour", ("red", "green", "blue")),
    )
)


def rows(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame(
        {
            "income": rng.uniform(0, 100, n),
            "owner": rng.choice(["yes", "no"], n),
            "colour": rng.choice(["red", "green", "blue"], n),
        }
    )
    logit = (data.income - 50) / 10 + np.where(data.owner == "yes", 2.0, -2.0)
    data["y"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    data["amount"] = data.income * 3 + np.where(data.owner == "yes", 40.0, 0.0)
    return data


def booster_for(objective: str = "binary", target: str = "y") -> lgb.Booster:
    """A model trained outside rowcast whose owner categories are in the other order."""
    data = rows(3_000, 0)
    x = data[["income", "owner", "colour"]].assign(
        owner=pd.Categorical(data.owner, categories=["no", "yes"]),
        colour=pd.Categorical(data.colour, categories=["blue", "green", "red"]),
    )
    params = {"objective": objective, "verbosity": -1, "num_leaves": 15}
    return lgb.train(params, lgb.Dataset(x, label=data[target]), num_boost_round=30)


BOOSTER = booster_for()


def write(booster: lgb.Booster, encoding: Encoding | None = None) -> tuple[MemoryPredictions, int]:
    """The grid as the workers write it (their scoring, keys and digest), and that digest."""
    bins = grid_bins(SIGNATURE.cardinalities, 0, SIGNATURE.grid_size)
    outputs = score(booster, SIGNATURE, bins, encoding)
    keys = key_matrix(bins, BUCKETS)
    store = MemoryPredictions()
    for key, out in zip(split_rows(keys), outputs.tolist(), strict=True):
        store.put(TABLE, key, PredictionRow(out, VERSION))
    return store, chunk_digest(keys, outputs)


def scan(store: MemoryPredictions) -> TableScan:
    """What the scan of HBase finds: the rows and the digest of their stored bytes."""
    table = store.tables[TABLE]
    return TableScan(
        len(table), cells_digest((k, encode_double(r.output)) for k, r in table.items())
    )


def gate(
    store: MemoryPredictions,
    digest: int,
    booster: lgb.Booster = BOOSTER,
    heldout: HeldOut | None = None,
    sample: int = 1_000,
) -> Verification:
    return asyncio.run(
        check(
            predictions=store,
            table=TABLE,
            version=VERSION,
            signature=SIGNATURE,
            salt_buckets=BUCKETS,
            booster=booster,
            seed=11,
            scanned=scan(store),
            digest=digest,
            sample_size=sample,
            heldout=heldout,
        )
    )


def test_a_faithful_table_passes() -> None:
    store, digest = write(BOOSTER)
    verdict = gate(store, digest)
    assert verdict.ok, verdict.reason
    assert (verdict.outcome, verdict.sampled, verdict.row_count) == ("passed", 24, 24)


def test_two_swapped_cells_are_refused_by_the_digest_and_the_sample() -> None:
    """Two values exchanged between keys: the row count is right, the digest is not, and the
    re-score sees both cells differ."""
    store, digest = write(BOOSTER)
    table = store.tables[TABLE]
    first, second = next((a, b) for a in table for b in table if table[a].output != table[b].output)
    table[first], table[second] = table[second], table[first]
    verdict = gate(store, digest)
    assert verdict.outcome == "failed_digest"
    assert "differs from" in verdict.reason and "moved between keys" in verdict.reason
    assert "2 of 24 sampled cells differ from the model" in verdict.reason


def test_a_truncated_table_is_refused_by_count_and_digest() -> None:
    store, digest = write(BOOSTER)
    del store.tables[TABLE][next(iter(store.tables[TABLE]))]
    verdict = gate(store, digest)
    assert verdict.outcome == "failed_row_count"
    assert f"table {TABLE} holds 23 rows, the grid has 24" in verdict.reason
    assert (
        "table digest" in verdict.reason and "1 of 24 sampled cells are missing" in verdict.reason
    )


def test_a_corrupted_cell_is_refused() -> None:
    """One value changed in its last bit."""
    store, digest = write(BOOSTER)
    key = next(iter(store.tables[TABLE]))
    old = store.tables[TABLE][key]
    store.tables[TABLE][key] = PredictionRow(math.nextafter(old.output, 1.0), VERSION)
    verdict = gate(store, digest)
    assert verdict.outcome == "failed_digest"
    assert "1 of 24 sampled cells differ from the model" in verdict.reason


def test_a_corrupted_cell_outside_the_sample_is_still_refused_by_the_digest() -> None:
    """The sample sees 5 of 24 cells; the digest sees all of them."""
    store, digest = write(BOOSTER)
    for key in store.tables[TABLE]:
        row = store.tables[TABLE][key]
        store.tables[TABLE][key] = PredictionRow(row.output + 1e-9, VERSION)
        break
    verdict = gate(store, digest, sample=5)
    assert not verdict.ok and verdict.outcome == "failed_digest"


def test_a_table_written_with_vocabulary_positions_as_codes_is_refused() -> None:
    """The old bug: the writer fed owner=yes as code 0, the file's code for "no". Its own
    digest matches what it wrote; the independent re-score through the file's categories
    does not."""
    store, digest = write(BOOSTER, Encoding({}))
    verdict = gate(store, digest)
    assert verdict.digest_ok and verdict.outcome == "failed_mismatched_cells"
    assert "sampled cells differ from the model" in verdict.reason


def test_a_version_written_with_another_version_number_is_refused() -> None:
    store, digest = write(BOOSTER)
    key = next(iter(store.tables[TABLE]))
    store.tables[TABLE][key] = replace(store.tables[TABLE][key], version=VERSION - 1)
    verdict = gate(store, digest)
    assert "1 of 24 sampled cells differ from the model" in verdict.reason


def heldout(kind: OutputKind, target: str, limit: FidelityDrop) -> HeldOut:
    return HeldOut(rows(2_000, 9), target, kind, limit)


def test_a_fidelity_drop_above_the_limit_is_refused_and_recorded() -> None:
    """Four income bins flatten the model coarsely: its held-out AUC drops by more than a
    strict limit, which refuses READY naming both figures; the default limit lets it pass."""
    store, digest = write(BOOSTER)
    strict = gate(
        store, digest, heldout=heldout(OutputKind.PROBABILITY, "y", FidelityDrop(auc=0.001))
    )
    drop = strict.metrics["auc_drop"]
    assert drop == pytest.approx(strict.metrics["auc_raw"] - strict.metrics["auc_table"])
    assert 0.001 < drop < 0.2
    assert strict.outcome == "failed_heldout"
    assert (
        "held-out AUC drops from" in strict.reason
        and "more than the allowed 0.001" in strict.reason
    )
    roomy = gate(store, digest, heldout=heldout(OutputKind.PROBABILITY, "y", FidelityDrop(auc=0.2)))
    assert roomy.ok, roomy.reason


def test_a_regressions_rmse_rise_above_the_limit_is_refused() -> None:
    booster = booster_for("regression", "amount")
    store, digest = write(booster)
    strict = gate(
        store, digest, booster, heldout(OutputKind.REGRESSION, "amount", FidelityDrop(rmse=0.1))
    )
    assert strict.metrics["rmse_rise"] > 0.1
    assert (
        "held-out RMSE rises from" in strict.reason and "more than the allowed 10%" in strict.reason
    )
    off = gate(
        store, digest, booster, heldout(OutputKind.REGRESSION, "amount", FidelityDrop.parse("off"))
    )
    assert off.ok, off.reason


@pytest.mark.parametrize(
    ("value", "limit"),
    [
        ("", FidelityDrop(0.02, 0.10)),
        ("auc=0.05", FidelityDrop(0.05, 0.10)),
        ("rmse=0.25, auc=0", FidelityDrop(0.0, 0.25)),
        ("off", FidelityDrop(math.inf, math.inf)),
    ],
)
def test_the_limit_comes_from_rowcast_max_fidelity_drop(value: str, limit: FidelityDrop) -> None:
    settings = Settings.from_env({"ROWCAST_MAX_FIDELITY_DROP": value})
    assert settings.max_fidelity_drop == limit


@pytest.mark.parametrize("value", ["0.02", "auc=-1", "gini=0.1", "auc=x"])
def test_a_bad_limit_is_refused_at_start_up(value: str) -> None:
    with pytest.raises(ValueError, match="ROWCAST_MAX_FIDELITY_DROP"):
        FidelityDrop.parse(value)
