"""The official records are reproduced bit-identically by the current code, on the real data."""
from __future__ import annotations

import importlib.util
import json

import pytest

from neuroharness.leaderboards import official_dir

TASK = "celegans-structure-function"

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("cect") is None or importlib.util.find_spec("wormneuroatlas") is None,
    reason="needs the cect and wormneuroatlas wheels installed (pip install --no-deps cect==0.3.5 wormneuroatlas==0.0.7.3)",
)

RECORDS = sorted(official_dir(TASK).glob("*.json"))


def test_there_are_official_records():
    assert len(RECORDS) == 12  # 4 baselines x seeds 0, 1, 2


@pytest.mark.parametrize("path", RECORDS, ids=lambda p: p.stem.split("__", 1)[1])
def test_official_record_is_reproduced_exactly(path, tmp_path):
    from neuroharness.leaderboards.runner import run

    official = json.loads(path.read_text())
    (new,) = run(TASK, official["model"]["name"], [official["seed"]], tmp_path, options=official["task"]["options"])
    rec = json.loads(new.read_text())
    # exact float equality: the same code path, data and seed must give the same bits
    assert rec["metrics"] == official["metrics"]
    assert rec["validation_metrics"] == official["validation_metrics"]
    for key in ("task", "datasets", "split", "split_sha256", "seed", "schema_version"):
        assert rec[key] == official[key], key
    for key in ("name", "n_parameters", "hyperparameters", "fitted"):
        assert rec["model"][key] == official["model"][key], key
