"""Benchmark: what a user waits for to fit and score one NSD subject, each way in a fresh process, side by side.

The default test run skips these (``addopts`` has ``--benchmark-skip``). Run them with::

    python -m pytest tests/benchmarks/test_bench_nsd_cli.py --benchmark-only -s \\
        --benchmark-columns=min,median,max,rounds [--benchmark-json=bench.json]

The data (synthetic, NSD may not be redistributed): one subject in the Algonauts 2023 challenge layout from
``scripts/make_nsd_challenge_fixture.py`` (``--with-test-fmri``: the official split is scored), the release's
vertex counts (19,004 lh + 20,544 rh on a 163,842-vertex surface), ``$NH_BENCH_NSD_N_TRAIN`` training
images (default 2000; the release: 9,841) and ``$NH_BENCH_NSD_N_TEST`` test images (default 159) of
``$NH_BENCH_NSD_IMAGE_SIZE`` px (default 64; the release: 425). ``NH_BENCH_NSD_REAL_SIZE=1`` uses the
release's sizes instead (``--real-size``: about 2 GB written; expect minutes). The fixture and the prepared
store (``neuroharness datasets prepare nsd-algonauts2023 --source ...`` into a private ``NEUROHARNESS_HOME``)
are made once per session in ``$NH_BENCH_NSD_DIR`` (default: a temp dir; reused when there).

Timed (wall clock of the whole child process, interpreter start and imports included, 1 round each):

* ``cli``: ``python -m neuroharness.cli run nsd-encoding --model pixels-pca-ridge --seeds 0
  --option split=official --out DIR``: reads the store, 32 x 32 area-averaged pixels -> standardize -> PCA
  100 -> ridge with a per-vertex penalty (5-fold CV) for every vertex, predicts and scores the test images.
* ``devkit``: the devkit's way (``code/02_baseline_encoding_model`` of github.com/gifale95/algonauts_2023,
  with pixels for AlexNet) in ``python -c``: ``np.load`` of the two ``*_training_fmri.npy``, every PNG opened
  with PIL and shrunk to 32 x 32 (``Image.BOX``: area averaging), ``StandardScaler`` -> ``PCA(100,
  random_state=20200220)`` fitted on the training images, then one scikit-learn ``LinearRegression`` fitted and
  applied to the test images per vertex in a Python loop -- timed on ``$NH_BENCH_NSD_LOOP_VERTICES`` vertices
  (default 500, half per hemisphere) and EXTRAPOLATED linearly to all the vertices: ``extrapolated_s`` =
  wall - loop + loop x vertices / timed vertices (each vertex is an independent fit of the same size). It
  computes no score (the CLI's time includes scoring and writing the record). pytest-benchmark's own table
  shows the MEASURED time of this child (subset of vertices); the comparable figure is ``extrapolated_s``.

``extra_info``: ``wall_s``, ``peak_rss_mb`` (GNU ``/usr/bin/time -f %M`` of the child where installed, else
``getrusage(RUSAGE_CHILDREN).ru_maxrss``, the largest child so far), the fixture's sizes; for ``devkit`` also
``loop_s``, ``vertices_timed``, ``extrapolated_s`` and ``ratio`` (devkit extrapolated / cli wall) and
``rss_ratio`` (devkit / cli peak RSS; the devkit's peak is measured, not extrapolated: its loop allocates no
more with more vertices beyond the preallocated (test, vertices) prediction array). BLAS threads: each child's
default (the machine's cores).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import bench_dir, load_script, run_child

REAL_SIZE = os.environ.get("NH_BENCH_NSD_REAL_SIZE", "").lower() in {"1", "true", "yes"}
N_TRAIN = int(os.environ.get("NH_BENCH_NSD_N_TRAIN", "2000"))
N_TEST = int(os.environ.get("NH_BENCH_NSD_N_TEST", "159"))
IMAGE_SIZE = int(os.environ.get("NH_BENCH_NSD_IMAGE_SIZE", "64"))
N_LOOP = int(os.environ.get("NH_BENCH_NSD_LOOP_VERTICES", "500"))
VERTICES = (19_004, 20_544)
SURFACE = 163_842
PIXELS = 32  # PixelsPcaRidge's default size
TIME = Path("/usr/bin/time")

DEVKIT = r"""
import json, os, sys, time
import numpy as np
from PIL import Image
from sklearn.decomposition import PCA
from sklearn.linear_model import LinearRegression
from sklearn.preprocessing import StandardScaler

folder, n_loop, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
fmri = {h: np.load(os.path.join(folder, "training_split", "training_fmri", f"{h}_training_fmri.npy"))
        for h in ("lh", "rh")}

def pixels(sub):
    d = os.path.join(folder, sub)
    out = []
    for name in sorted(os.listdir(d)):
        with Image.open(os.path.join(d, name)) as im:
            out.append(np.asarray(im.convert("RGB").resize((size, size), Image.BOX), np.float32).ravel())
    return np.stack(out)

x_train = pixels("training_split/training_images")
x_test = pixels("test_split/test_images")
scaler = StandardScaler().fit(x_train)
pca = PCA(n_components=100, random_state=20200220).fit(scaler.transform(x_train))
f_train, f_test = pca.transform(scaler.transform(x_train)), pca.transform(scaler.transform(x_test))
pred = {h: np.zeros((len(f_test), y.shape[1]), np.float32) for h, y in fmri.items()}
t = time.perf_counter()
timed = 0
for h, y in fmri.items():
    for v in range(min(n_loop // 2, y.shape[1])):
        reg = LinearRegression().fit(f_train, y[:, v])
        pred[h][:, v] = reg.predict(f_test)
        timed += 1
loop = time.perf_counter() - t
print(json.dumps({"loop_s": loop, "vertices_timed": timed, "vertices": sum(y.shape[1] for y in fmri.values()),
                  "n_train": len(f_train), "n_test": len(f_test)}))
"""

_results: dict[str, dict] = {}


def _sizes() -> dict:
    if REAL_SIZE:
        n_train, n_test, lh, rh = load_script("make_nsd_challenge_fixture").REAL_COUNTS["subj01"]
        return dict(n_train=n_train, n_test=n_test, vertices_lh=lh, vertices_rh=rh, image_size=425)
    return dict(n_train=N_TRAIN, n_test=N_TEST, vertices_lh=VERTICES[0], vertices_rh=VERTICES[1],
                image_size=IMAGE_SIZE)


def _env(home: Path) -> dict:
    return {**os.environ, "CI": "true", "NEUROHARNESS_QUIET": "1", "NEUROHARNESS_HOME": str(home)}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict:
    """The challenge-layout fixture and its prepared store, made once (reused from ``$NH_BENCH_NSD_DIR``)."""
    sizes = _sizes()
    root = bench_dir("NH_BENCH_NSD_DIR", tmp_path_factory, "nsd_cli_bench")
    tag = "real" if REAL_SIZE else f"{sizes['n_train']}_{sizes['n_test']}_{sizes['image_size']}"
    src, home = root / f"challenge_{tag}", root / f"home_challenge_{tag}"
    done = home / "prepared.ok"
    if not done.exists():
        t = time.perf_counter()
        gen = load_script("make_nsd_challenge_fixture")
        if REAL_SIZE:
            gen.write_release(src, ("subj01",), real_size=True, with_test_fmri=True)
        else:
            gen.write_release(src, ("subj01",), n_train=sizes["n_train"], n_test=sizes["n_test"],
                              vertices=VERTICES, image_size=sizes["image_size"], surface=SURFACE,
                              with_test_fmri=True)
        out = subprocess.run([sys.executable, "-m", "neuroharness.cli", "datasets", "prepare", "nsd-algonauts2023",
                              "--source", str(src), "--force"], env=_env(home), capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        home.mkdir(parents=True, exist_ok=True)
        done.write_text(f"{time.perf_counter() - t:.1f}\n")
    return {"src": src, "home": home, "sizes": sizes, "setup_s": float(done.read_text())}


def _record(benchmark, store, result: dict) -> None:
    benchmark.extra_info.update({k: v for k, v in store["sizes"].items()})
    benchmark.extra_info.update(wall_s=round(result["wall_s"], 2), peak_rss_mb=round(result["peak_rss_mb"]),
                                rss_tool="/usr/bin/time" if TIME.exists() else "RUSAGE_CHILDREN",
                                cpus=os.cpu_count())


@pytest.mark.parametrize("way", ["cli", "devkit"])
def test_fit_and_predict_one_subject(benchmark, store, way, tmp_path):
    if way == "cli":
        out_dir = tmp_path / "records"
        argv = [sys.executable, "-m", "neuroharness.cli", "run", "nsd-encoding", "--model", "pixels-pca-ridge",
                "--seeds", "0", "--option", "split=official", "--out", str(out_dir)]
    else:
        argv = [sys.executable, "-c", DEVKIT, str(store["src"] / "subj01"), str(N_LOOP), str(PIXELS)]
    box = {}

    def run():
        box.update(run_child(argv, _env(store["home"]), tmp_path))

    benchmark.pedantic(run, rounds=1, iterations=1)
    _record(benchmark, store, box)
    if way == "cli":
        (record,) = out_dir.glob("*.json")
        metrics = json.loads(record.read_text())["metrics"]
        assert metrics["n_vertices"] == sum(VERTICES) or REAL_SIZE
        benchmark.extra_info.update(mean_pearson_r=round(metrics["mean_pearson_r"], 4),
                                    median_nc_score=round(metrics["median_nc_score"], 2),
                                    fixture_and_prepare_s=store["setup_s"])
    else:
        info = json.loads(box["stdout"].strip().splitlines()[-1])
        extrapolated = box["wall_s"] - info["loop_s"] + info["loop_s"] * info["vertices"] / info["vertices_timed"]
        benchmark.extra_info.update(
            loop_s=round(info["loop_s"], 2), vertices_timed=info["vertices_timed"], vertices=info["vertices"],
            extrapolated_s=round(extrapolated, 1),
            note=f"LinearRegression loop timed on {info['vertices_timed']} of {info['vertices']} vertices and "
                 "extrapolated linearly; peak RSS measured, not extrapolated")
        box["extrapolated_s"] = extrapolated
    _results[way] = box
    if "cli" in _results and "devkit" in _results:
        cli, dev = _results["cli"], _results["devkit"]
        ratio, rss_ratio = dev["extrapolated_s"] / cli["wall_s"], dev["peak_rss_mb"] / cli["peak_rss_mb"]
        benchmark.extra_info.update(cli_wall_s=round(cli["wall_s"], 2), cli_peak_rss_mb=round(cli["peak_rss_mb"]),
                                    ratio=round(ratio, 1), rss_ratio=round(rss_ratio, 2))
        print(f"\nNSD one subject, fresh processes: cli {cli['wall_s']:.1f} s / {cli['peak_rss_mb']:.0f} MB; "
              f"devkit loop {dev['extrapolated_s']:.1f} s extrapolated ({dev['wall_s']:.1f} s measured) / "
              f"{dev['peak_rss_mb']:.0f} MB; ratio {ratio:.1f}x time, {rss_ratio:.2f}x RSS")
