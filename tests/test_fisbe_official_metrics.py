"""The FISBe metrics equal the official evaluator's on hard cases, FS and FM included.

Expectations: ``tests/data/fisbe_official_metrics.json``, the outputs of the official
evaluator (evalinstseg, Kainmueller-Lab/evaluate-instance-segmentation at the commit
the file names, ``--app flylight``, and the same without small-component removal) on
the cases of ``scripts/make_fisbe_metric_cases.py``, made with
``python scripts/run_fisbe_official_evaluator.py --evaluator-python PY`` (its docstring
has the whole recipe). The evaluator is not needed to run these tests.

Integers (FS, FM, counts, TP/FP/FN per threshold) must be equal; floats agree to 1e-6
(the evaluator keeps its ratios in float32). One documented deviation: coverage is the
true union of the assigned predictions (C_i <= 1), where the evaluator sums recalls
when the GT has no overlaps (C_i = 2.0 for a duplicated prediction).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import load_script

DATA = Path(__file__).parent / "data" / "fisbe_official_metrics.json"
EXPECTED = json.loads(DATA.read_text())
CROP = Path(__file__).resolve().parents[2] / "shared" / "data" / "fisbe" / "JRC_SS05008-20160318_24_B2_crop.zarr"
#: (case, metric) pairs where neuroharness deliberately differs (see the module docstring)
UNION_COVERAGE = {"syn_nooverlap_duplicate_stack"}
TOL = 1e-6


@pytest.fixture(scope="module")
def runner():
    return load_script("run_fisbe_official_evaluator")


@pytest.fixture(scope="module")
def cases(runner):
    builder = load_script("make_fisbe_metric_cases")
    out = {c.name: c for c in builder.build_cases(use_crop=False)}
    if CROP.exists():
        out.update({c.name: c for c in builder.build_cases(CROP, use_synthetic=False)})
    return out


def _params():
    for name, entry in EXPECTED["cases"].items():
        for setting in entry["official"]:
            marks = ()
            if entry["source"] == "crop":
                marks = pytest.mark.skipif(not CROP.exists(), reason=f"real FISBe crop not found at {CROP} (../shared is absent)")
            yield pytest.param(name, setting, id=f"{name}-{setting}", marks=marks)


def test_the_oracle_covers_the_hard_cases():
    cases = EXPECTED["cases"]
    assert len(cases) >= 20 and EXPECTED["evaluator"]["commit"].startswith("cc34f4d")
    described = " ".join(c["description"] for c in cases.values()).lower()
    for word in ("overlap", "merge", "split", "twice", "partly", "dropped", "covering the two overlapping"):
        assert word in described, word
    flylight = [c["official"]["flylight"]["metrics"] for c in cases.values()]
    assert any(m["FS"] > 0 for m in flylight) and any(m["FM"] > 1 for m in flylight)


@pytest.mark.parametrize("name, setting", list(_params()))
def test_metrics_equal_the_official_evaluator(name, setting, cases, runner):
    entry = EXPECTED["cases"][name]
    case = cases[name]
    # the case builder still makes exactly the arrays the evaluator scored
    assert (runner._sha(case.gt), runner._sha(case.pred)) == (entry["sha256"]["gt"], entry["sha256"]["pred"])
    official = entry["official"][setting]
    ours = runner.ours_metrics(case, EXPECTED["settings"][setting]["neuroharness_remove_small"])
    want = official["metrics"]
    for key in ("FS", "FM", "TP_05", "n_gt", "n_pred"):
        assert ours[key] == want[key], key
    for th, counts in want["per_threshold"].items():
        got = ours["per_threshold"][th]
        assert (got["tp"], got["fp"], got["fn"]) == (counts["tp"], counts["fp"], counts["fn"]), th
        assert got["f1"] == pytest.approx(counts["f1"], abs=TOL), th
    for key in ("avF1", "tp", "clDice_TP"):
        assert ours[key] == pytest.approx(want[key], abs=TOL), key
    assert ours["clDice_TP_values"] == pytest.approx(want["clDice_TP_values"], abs=TOL)
    if name in UNION_COVERAGE:
        # the evaluator sums the recalls of the two copies (2.0); the union covers the neuron once
        assert max(want["coverage"]) == pytest.approx(2.0) and ours["coverage"] == pytest.approx(
            [min(c, 1.0) for c in want["coverage"]], abs=TOL)
        assert ours["C"] < want["C"] and ours["S"] < want["S"]
    else:
        assert ours["coverage"] == pytest.approx(want["coverage"], abs=TOL)
        assert ours["C"] == pytest.approx(want["C"], abs=TOL) and ours["S"] == pytest.approx(want["S"], abs=TOL)


@pytest.mark.skipif(not CROP.exists(), reason=f"real FISBe crop not found at {CROP} (../shared is absent)")
@pytest.mark.parametrize("name, fs_fm", [("crop_painted", (1, 1)), ("crop_merge12", (1, 2))])
def test_the_reported_cases_on_the_real_crop(name, fs_fm, cases, runner):
    """The bug report: the crop's neurons painted into one label image (lowest channel wins), and the
    same with neurons 1 and 2 merged; the official evaluator reports FS/FM 1/1 and 1/2."""
    assert (EXPECTED["cases"][name]["official"]["flylight"]["metrics"]["FS"],
            EXPECTED["cases"][name]["official"]["flylight"]["metrics"]["FM"]) == fs_fm
    ours = runner.ours_metrics(cases[name], 800)
    assert (ours["FS"], ours["FM"]) == fs_fm
