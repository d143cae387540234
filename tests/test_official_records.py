"""The official records are reproduced bit-identically by the current code, on the real data."""
from __future__ import annotations

import importlib.util

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


def test_official_records_are_reproduced_exactly():
    """`neuroharness reproduce` on every official record: metrics, validation metrics, dataset
    checksums, split digest and hyperparameters bit-identical (the card's tolerance is 0)."""
    from neuroharness.leaderboards.reproduce import reproduce

    report = reproduce(TASK)
    assert report.tolerance == 0 and len(report.checked) == 12
    assert report.ok, "\n".join(report.lines())
