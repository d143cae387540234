"""Benchmarks: scoring one real-size FISBe volume, as a user waits for it and as the metric alone.

The default test run skips these (``addopts`` has ``--benchmark-skip``). Run them with::

    python -m pytest tests/benchmarks/test_bench_fisbe_evaluate.py --benchmark-only \\
        --benchmark-columns=min,median,max,rounds [--benchmark-json=bench.json]

The case: a ``fisbe`` store with one completely-labeled test sample of the FISBe size
(385, 685, 686) and 11 GT neurons as instance channels, plus two small train/val samples
(the task wants a val split), and a compressed ``.npz`` submission holding one (Z, Y, X)
integer label image named by the sample id.  Where ``../shared/data/fisbe/predictions/
R14A02-20180905_65_A6.hdf`` exists, the GT channels are the 11 labels of its
``volumes/gmm_label_cleaned`` and the prediction an int32 copy with neurons 1 and 2 merged,
3 split at its median z, 5 dropped and 10 shifted by one voxel; otherwise
``scripts/make_fisbe_fixture.py`` makes 11 synthetic neurons (overlapping) and the prediction
is ``derive_prediction`` of ``tests/test_instance_segmentation_metrics.py``.  The case is
built once into ``$NH_BENCH_FISBE_EVAL_DIR`` (default: a temp dir; a few minutes) and reused
from there (delete the folder to rebuild it).

What is timed (wall clock, pytest-benchmark):

* ``command``: ``neuroharness evaluate fisbe-instance-segmentation PRED.npz --json`` in a
  fresh process (3 rounds after one warm-up that fills numba's cache and the page cache);
  ``extra_info["maxrss_mb"]``: the child's peak RSS (GNU ``/usr/bin/time -f %M``).
  Targets: <= 10 s and <= 2 GB.
* ``task_evaluate``: ``task.evaluate(path)`` in this process (the data view cached):
  npz decompression, GT read, checks, metric, aggregation.
* ``metric_core``: ``evaluate_instances`` on the arrays the task hands it (the GT stack of
  ``StoreData.gt`` and the prediction of ``PredictionFile.load``).

For the in-process ones ``extra_info`` has ``rss_before_mb`` and ``peak_rss_mb``: the
process's resident set before one untimed call and its high-water mark during it (Linux:
``VmHWM`` after resetting it through ``/proc/self/clear_refs``; elsewhere absent).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import bench_dir, load_script, peak_rss

TASK = "fisbe-instance-segmentation"
SHAPE = (385, 685, 686)
SAMPLE = "R14A02-20180905_65_A6"  # an official completely/test sample
SMALL = {"R38F04-20181005_63_G3": "train", "R22C03-20180918_66_J2": "val"}  # official completely train/val names
REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "fisbe" / "predictions" / f"{SAMPLE}.hdf"
EXE = Path(sys.executable).with_name("neuroharness")
TIME = Path("/usr/bin/time")
LIMIT_S, LIMIT_MB = 10.0, 2048


def _real_volumes():
    import h5py

    with h5py.File(REAL, "r") as f:
        lab = f["volumes/gmm_label_cleaned"][:]
        img = f["volumes/gmm_image"][:]
    ids = np.unique(lab)
    ids = ids[ids != 0]
    raw = np.moveaxis(img, -1, 0).astype(np.uint16)
    gt = np.zeros((len(ids), *lab.shape), np.uint8)
    for k, i in enumerate(ids):
        gt[k][lab == i] = k + 1
    pred = lab.copy()
    pred[pred == 2] = 1  # merge
    zm = int(np.median(np.nonzero(lab == 3)[0]))
    pred[zm:][lab[zm:] == 3] = ids.max() + 1  # split
    pred[lab == 5] = 0  # drop
    pred[lab == 10] = 0
    pred[:, :, 1:][lab[:, :, :-1] == 10] = 10  # shift
    return raw, gt, pred, "real"


def _synthetic_volumes():
    from test_instance_segmentation_metrics import derive_prediction

    raw, gt = load_script("make_fisbe_fixture").synthetic_sample(SHAPE, n_neurons=11, seed=0)
    return raw, gt, derive_prediction(gt, seed=0), "synthetic"


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """(NEUROHARNESS_HOME, prediction path, kind) of the real-size case, built once."""
    from neuroharness.loaders import get_loader

    root = bench_dir("NH_BENCH_FISBE_EVAL_DIR", tmp_path_factory, "fisbe_eval_bench")
    home, pred_path, kind_file = root / "home", root / "pred.npz", root / "kind"
    os.environ["NEUROHARNESS_HOME"] = str(home)
    if not (pred_path.exists() and kind_file.exists() and get_loader("fisbe").store_path().exists()):
        gen = load_script("make_fisbe_fixture")
        src = root / "src"
        raw, gt, pred, kind = _real_volumes() if REAL.exists() else _synthetic_volumes()
        gen.write_sample(src / "completely" / "test" / f"{SAMPLE}.zarr", raw, gt)
        del raw, gt
        listed = {SAMPLE: {"subset": "completely", "split": "test"}}
        for seed, (name, split) in enumerate(SMALL.items()):
            gen.write_sample(src / "completely" / split / f"{name}.zarr", *gen.synthetic_sample((32, 64, 64), 2, seed))
            listed[name] = {"subset": "completely", "split": split}
        gen.write_split_list(src / "sample_list_per_split.txt", listed)
        get_loader("fisbe").prepare(source=src, force=True)
        np.savez_compressed(pred_path, **{SAMPLE: pred})
        kind_file.write_text(kind)
    return home, pred_path, kind_file.read_text()


@pytest.fixture(scope="module")
def expected(case):
    from neuroharness.tasks import get_task

    return get_task(TASK).evaluate(case[1])


@pytest.mark.skipif(not EXE.exists(), reason=f"no neuroharness console script beside {sys.executable}")
def test_command(benchmark, case, expected, tmp_path):
    home, pred_path, kind = case
    report = tmp_path / "rss"
    prefix = [str(TIME), "-f", "%M", "-o", str(report)] if TIME.exists() else []
    env = {**os.environ, "CI": "true", "NEUROHARNESS_HOME": str(home)}
    peaks, outputs = [], []

    def run():
        out = subprocess.run(prefix + [str(EXE), "evaluate", TASK, str(pred_path), "--json"],
                             capture_output=True, text=True, env=env)
        assert out.returncode == 0, out.stderr
        outputs.append(out.stdout)
        if prefix:
            peaks.append(int(report.read_text().split()[-1]))

    benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)
    got = json.loads(outputs[-1])
    assert json.dumps(got, sort_keys=True) == json.dumps(expected, sort_keys=True)  # NaN-safe equality
    benchmark.extra_info.update(case=kind, shape=list(SHAPE), n_gt=expected["n_gt"])
    if peaks:
        benchmark.extra_info["maxrss_mb"] = round(max(peaks) / 1024, 1)
        assert max(peaks) / 1024 <= LIMIT_MB
    assert benchmark.stats.stats.median <= LIMIT_S


def test_task_evaluate(benchmark, case, expected):
    from neuroharness.tasks import get_task

    task = get_task(TASK)
    benchmark.extra_info.update(case=case[2], **peak_rss(lambda: task.evaluate(case[1])))
    result = benchmark.pedantic(task.evaluate, args=(case[1],), rounds=3, iterations=1)
    assert json.dumps(result, sort_keys=True) == json.dumps(expected, sort_keys=True)


def test_metric_core(benchmark, case, expected):
    from neuroharness.metrics.instance_segmentation import evaluate_instances
    from neuroharness.tasks import get_task
    from neuroharness.tasks.fisbe.instance_segmentation import PredictionFile

    data = get_task(TASK).data()
    gt = data.gt(SAMPLE)
    with PredictionFile(case[1]) as pf:
        pred = pf.load(SAMPLE)
    evaluate_instances(gt, pred)  # numba's cache load, once
    benchmark.extra_info.update(case=case[2], gt_shape=list(gt.shape), pred_dtype=str(pred.dtype),
                                **peak_rss(lambda: evaluate_instances(gt, pred)))
    r = benchmark.pedantic(evaluate_instances, args=(gt, pred), rounds=3, iterations=1)
    assert r["n_gt"] == expected["n_gt"] == 11 and r["n_pred"] == expected["n_pred"]
