"""Benchmarks: NSzED EDF -> store conversion, and training windows per second, each beside the way a user gets
windows from EDF files with MNE, in fresh processes, side by side.

The default test run skips these (``addopts`` has ``--benchmark-skip``). Run them with::

    NH_BENCH_EEG_DIR=/tmp/eeg_bench python -m pytest tests/benchmarks/test_bench_eeg.py --benchmark-only -s \\
        --benchmark-columns=min,median,max,rounds [-k real | -k small] [--benchmark-json=bench.json]

The data (synthetic: ``scripts/make_eeg_fixture.py``, EDF written by ``mne.export.export_raw`` through edfio):

* ``real``: ``--real-size``, the issue's size: 59 subjects (37 patients, 22 controls) x 30 min of resting EEG
  at 250 Hz, 19 10/20 channels (device A's files also hold ECG and Photic: 21 signals), 16-bit EDF, about 1 GB;
* ``small``: the default fixture (runs in seconds): 10 + 8 subjects x 60 s, rest, arithmetic and oddball
  recordings and second sessions, device A EDF at 500 Hz, device B EDF at 256 Hz and BrainVision (resampled
  to 250 Hz by both sides).

The fixture and (for the windows benchmark) its prepared store are made once per session in
``$NH_BENCH_EEG_DIR`` (default: a temp dir; reused when there: ``nszed_<size>/``, ``home_<size>/``).

``test_convert`` (1 round each, wall clock of the whole child process, interpreter start and imports included):

* ``cli``: ``python -m neuroharness.cli datasets prepare nszed --source DIR --force`` into a private
  ``NEUROHARNESS_HOME``: plan from the layout and metadata table, every recording read with MNE, channels mapped
  and ordered, resampled where needed, written as float32 Zarr, the store checksummed;
* ``inner``: the loader's inner functions in a fresh child, each timed: ``metadata.plan``, then per recording
  ``reader.read_recording`` (``read_s``: what MB/s of EDF read is computed from) and ``store.write_recording``
  (``write_s``), without the root table, the atomic rename and the checksum of ``cli``;
* ``mne-epochs``: the reference, what a user does instead of converting, and repeats at every training epoch
  when the EDF files are read at each epoch: for every recording ``mne.io.read_raw_edf(path, preload=True)``
  (``mne.io.read_raw`` for BrainVision), ``raw.pick`` of the 19 EEG channels (in one channel order for every
  device), ``raw.resample(250)`` where the file's rate differs, and ``mne.make_fixed_length_epochs(raw,
  duration=4).get_data()``.

``test_training_windows`` (1 round each, fresh children): the windows of fold 0's training subjects of task
``eeg-schizophrenia`` (default options: rest, 4 s windows, stride 4 s, stratified 5-fold by subject,
``fold_seed`` 0):

* ``store``: the task's own path from the prepared store: ``EegSchizophrenia.load`` (reads every rest
  recording of the store once into memory, test subjects' too, and makes the folds and the window index,
  ``tasks/eeg/windows.py``) then ``EegTrainingView.fold(0)`` (``Windows.batch``: the (n, 19, 1000) float32 array
  a model is fitted on); ``windows_per_s`` = fold 0's training windows / (load + fold), ``fold_s`` the batch
  alone (what a later fold or rebuild costs once the recordings are in memory);
* ``mne-epochs``: the same subjects' recordings read from EDF as above, epochs concatenated into one array
  (float64, MNE's ``get_data``; ``windows_per_s_without_concat`` leaves the concatenation out).

The two sides must make the same number of windows (asserted), and the store's first training window must
equal MNE's epoch of the same file and start to float32 precision (``max_abs_diff_uv``).

* ``braindecode``: the same files read as for ``mne-epochs``, each wrapped in a braindecode ``RawDataset``,
  ``create_fixed_length_windows(window_size_samples=window_stride_samples=1000, drop_last_window=True,
  preload=True)``, then one pass of ``__getitem__`` over every window (what a DataLoader does each epoch),
  stacked. Skipped where braindecode does not import, which is the case in the project's own environment:
  every braindecode release requires torchaudio, and PyPI's torchaudio is a CUDA build that fails beside the
  pinned CPU torch (``libc10_cuda.so: cannot open shared object file``). It runs in a venv with torch and
  torchaudio of matching builds (torch 2.9.1 + torchaudio 2.9.1 from PyPI, braindecode 1.8.1: the figures of
  the issue note come from there, run with that venv's python, the store side included).

``extra_info``: ``wall_s``, ``peak_rss_mb`` (GNU ``/usr/bin/time -f %M`` of the child where installed, else
``getrusage(RUSAGE_CHILDREN).ru_maxrss``, the largest child so far), ``source_mb`` (recording files: EDF, and
BrainVision .vhdr/.vmrk/.eeg), ``mb_per_s`` (source MB per second: of the whole child for ``cli`` and
``mne-epochs``, of ``read_s`` for ``inner``), ``windows``, ``windows_per_s``, the fixture's sizes, ``cpus``; the
last test of each pair adds the ratios. Both ``mne-epochs`` children keep every epoch and concatenate them
(the training array), which is most of their peak RSS. The files were
just written or read, so they come from the page cache: the figures are the code's speed, not a disk's.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import bench_dir, load_script, run_child

TIME = Path("/usr/bin/time")
SIZES = ["small", "real"]
WINDOW_S = 4.0
SFREQ = 250.0

INNER = r"""
import json, sys, time
from pathlib import Path
t0 = time.perf_counter()
from neuroharness.loaders.eeg import layout as L, metadata as M, reader as R, store as S
import zarr
src, out = Path(sys.argv[1]), Path(sys.argv[2])
lay = L.packaged_layout("nszed")
t = time.perf_counter()
infos, skipped, _ = M.plan(src, lay)
plan_s = time.perf_counter() - t
zarr.open_group(str(out), mode="w", zarr_format=2)
read_s = write_s = 0.0
samples = 0
for info in infos:
    t = time.perf_counter()
    data = R.read_recording(info.path, lay.device(info.device), lay.common_sfreq)
    read_s += time.perf_counter() - t
    t = time.perf_counter()
    S.write_recording(out, info, data)
    write_s += time.perf_counter() - t
    samples += data.eeg.size
print(json.dumps({"plan_s": plan_s, "read_s": read_s, "write_s": write_s, "recordings": len(infos),
                  "skipped": len(skipped), "store_samples": samples, "import_s": t - t0}))
"""

MNE_EPOCHS = r"""
import json, sys, time, warnings
import numpy as np
import mne
jobs = json.load(open(sys.argv[1]))
sfreq, window_s = float(sys.argv[2]), float(sys.argv[3])
probe = np.load(sys.argv[4]) if len(sys.argv) > 4 else None
t0 = time.perf_counter()
read_s = epoch_s = 0.0
parts, n, diff = [], 0, None
for job in jobs:
    t = time.perf_counter()
    path = job["path"]
    if path.lower().endswith(".edf"):
        raw = mne.io.read_raw_edf(path, preload=True, verbose="error")
    else:
        raw = mne.io.read_raw(path, preload=True, verbose="error")
    raw.pick(job["picks"])
    if raw.info["sfreq"] != sfreq:
        raw.resample(sfreq, npad="auto", verbose="error")
    read_s += time.perf_counter() - t
    t = time.perf_counter()
    x = mne.make_fixed_length_epochs(raw, duration=window_s, preload=True, verbose="error").get_data()
    epoch_s += time.perf_counter() - t
    if probe is not None and job.get("probe"):
        diff = float(np.abs(x[0].astype(np.float32) - probe).max())
    parts.append(x)
    n += len(x)
t = time.perf_counter()
X = np.concatenate(parts) if len(jobs) > 1 else parts[0]
concat_s = time.perf_counter() - t
print(json.dumps({"read_s": read_s, "epoch_s": epoch_s, "concat_s": concat_s, "windows": n,
                  "shape": list(X.shape), "dtype": str(X.dtype), "max_abs_diff": diff,
                  "loop_s": time.perf_counter() - t0}))
"""

STORE_WINDOWS = r"""
import json, sys, time
import numpy as np
from neuroharness.tasks import get_task
task = get_task("eeg-schizophrenia")
options = task.resolve_options({})
t = time.perf_counter()
data = task.load(options)
load_s = time.perf_counter() - t
view = task.training_view_of(data)
t = time.perf_counter()
fold = view.fold(0)
fold_s = time.perf_counter() - t
X = fold.X
src = data.training_source
idx = view.train_index(0)
first = int(idx[0])
rec = str(src.recording_ids[src.recording[first]])
np.save(sys.argv[1], np.ascontiguousarray(X[0]))
print(json.dumps({"load_s": load_s, "fold_s": fold_s, "windows": int(len(X)), "shape": list(X.shape),
                  "dtype": str(X.dtype), "first_recording": rec, "first_start": int(src.start[first]),
                  "all_windows": int(len(data.windows))}))
"""

BRAINDECODE = r"""
import json, sys, time
import numpy as np
import mne
import pandas as pd
from braindecode.datasets import BaseConcatDataset, RawDataset
from braindecode.preprocessing import create_fixed_length_windows
jobs = json.load(open(sys.argv[1]))
sfreq, window_s = float(sys.argv[2]), float(sys.argv[3])
win = int(round(sfreq * window_s))
t = time.perf_counter()
datasets = []
for job in jobs:
    path = job["path"]
    if path.lower().endswith(".edf"):
        raw = mne.io.read_raw_edf(path, preload=True, verbose="error")
    else:
        raw = mne.io.read_raw(path, preload=True, verbose="error")
    raw.pick(job["picks"])
    if raw.info["sfreq"] != sfreq:
        raw.resample(sfreq, npad="auto", verbose="error")
    datasets.append(RawDataset(raw, description=pd.Series({"recording": job["recording"], "target": 0}),
                               target_name="target"))
read_s = time.perf_counter() - t
t = time.perf_counter()
windows = create_fixed_length_windows(BaseConcatDataset(datasets), window_size_samples=win,
                                      window_stride_samples=win, drop_last_window=True, preload=True)
window_s_ = time.perf_counter() - t
t = time.perf_counter()
X = np.stack([windows[i][0] for i in range(len(windows))])  # one pass of __getitem__, as a DataLoader makes
iterate_s = time.perf_counter() - t
print(json.dumps({"read_s": read_s, "window_s": window_s_, "iterate_s": iterate_s, "windows": int(len(X)),
                  "shape": list(X.shape), "dtype": str(X.dtype)}))
"""


def _braindecode_imports() -> str | None:
    """None where braindecode imports in a child of this interpreter, else why not (the skip reason)."""
    out = subprocess.run([sys.executable, "-c", "import braindecode.datasets"], capture_output=True, text=True)
    if out.returncode == 0:
        return None
    last = (out.stderr.strip().splitlines() or ["?"])[-1]
    return (f"braindecode does not import here ({last[:200]}): it requires torchaudio, whose PyPI build needs "
            "the CUDA torch; run this benchmark in a venv with torch + torchaudio of matching builds")


_results: dict[tuple, dict] = {}


def _env(home: Path) -> dict:
    return {**os.environ, "CI": "true", "NEUROHARNESS_QUIET": "1", "NEUROHARNESS_HOME": str(home)}


def _last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return bench_dir("NH_BENCH_EEG_DIR", tmp_path_factory, "eeg_bench")


_sources: dict[str, dict] = {}


def source(root: Path, size: str) -> dict:
    """The NSzED-like fixture of ``size`` (written once; reused when there) and what the reference reads."""
    if size in _sources:
        return _sources[size]
    gen = load_script("make_eeg_fixture")
    from neuroharness.loaders.eeg.layout import montage_order

    real = size == "real"
    src = root / f"nszed_{size}"
    t = time.perf_counter()
    if not (src / "metadata.csv").is_file():
        manifest = gen.write_nszed(src, real_size=real)
    else:
        manifest = gen.plan_nszed(real_size=real)
    fixture_s = time.perf_counter() - t
    jobs = {}
    for r in manifest.recordings:
        by_name = {c: lab for lab, c in zip(r.labels, r.canonical) if c is not None}
        jobs[r.file] = {"path": str(src / r.file), "picks": [by_name[c] for c in montage_order(by_name)],
                        "condition": r.canonical_condition, "subject": r.subject}
    files = [p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in (".edf", ".vhdr", ".vmrk", ".eeg")]
    _sources[size] = {"src": src, "jobs": jobs, "source_mb": sum(p.stat().st_size for p in files) / 2**20,
                      "recordings": len(manifest.recordings), "subjects": len(manifest.subjects),
                      "seconds": manifest.params["seconds"], "fixture_s": round(fixture_s, 1)}
    return _sources[size]


def _prepare_cli(src: Path) -> list[str]:
    return [sys.executable, "-m", "neuroharness.cli", "datasets", "prepare", "nszed", "--source", str(src), "--force"]


def _record(benchmark, info: dict, result: dict, size: str) -> None:
    benchmark.extra_info.update(size=size, subjects=info["subjects"], recordings=info["recordings"],
                                seconds_per_recording=info["seconds"], source_mb=round(info["source_mb"], 1),
                                wall_s=round(result["wall_s"], 2), peak_rss_mb=round(result["peak_rss_mb"]),
                                rss_tool="/usr/bin/time" if TIME.exists() else "RUSAGE_CHILDREN", cpus=os.cpu_count())


# -- conversion ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("way", ["cli", "inner", "mne-epochs"])
@pytest.mark.parametrize("size", SIZES)
def test_convert(benchmark, root, size, way, tmp_path):
    info = source(root, size)
    home = root / f"home_{size}"
    box = {}
    if way == "cli":
        argv = _prepare_cli(info["src"])
    elif way == "inner":
        argv = [sys.executable, "-c", INNER, str(info["src"]), str(tmp_path / "inner.zarr")]
    else:
        jobs = tmp_path / "jobs.json"
        jobs.write_text(json.dumps(list(info["jobs"].values())))
        argv = [sys.executable, "-c", MNE_EPOCHS, str(jobs), str(SFREQ), str(WINDOW_S)]

    def run():
        box.update(run_child(argv, _env(home), tmp_path))

    benchmark.pedantic(run, rounds=1, iterations=1)
    _record(benchmark, info, box, size)
    mb = info["source_mb"]
    if way == "cli":
        (home / "prepared.ok").write_text(f"{box['wall_s']:.1f}\n")  # the windows benchmark reuses this store
        benchmark.extra_info.update(mb_per_s=round(mb / box["wall_s"], 1))
    elif way == "inner":
        child = _last_json(box["stdout"])
        shutil.rmtree(tmp_path / "inner.zarr", ignore_errors=True)
        assert child["recordings"] == info["recordings"] and child["skipped"] == 0
        benchmark.extra_info.update(plan_s=round(child["plan_s"], 2), read_s=round(child["read_s"], 2),
                                    write_s=round(child["write_s"], 2), mb_per_s=round(mb / child["read_s"], 1),
                                    store_mb=round(child["store_samples"] * 4 / 2**20, 1))
        box["read_s"] = child["read_s"]
    else:
        child = _last_json(box["stdout"])
        benchmark.extra_info.update(read_s=round(child["read_s"], 2), epoch_s=round(child["epoch_s"], 2),
                                    concat_s=round(child["concat_s"], 2), windows=child["windows"],
                                    mb_per_s=round(mb / box["wall_s"], 1))
    _results[("convert", size, way)] = box
    if all(("convert", size, w) in _results for w in ("cli", "inner", "mne-epochs")):
        cli, inner, ref = (_results[("convert", size, w)] for w in ("cli", "inner", "mne-epochs"))
        benchmark.extra_info.update(cli_wall_s=round(cli["wall_s"], 2), cli_peak_rss_mb=round(cli["peak_rss_mb"]),
                                    ratio_mne_pass_to_cli=round(ref["wall_s"] / cli["wall_s"], 2))
        print(f"\nNSzED {size} ({mb:.0f} MB of recordings), fresh processes: prepare (cli) {cli['wall_s']:.1f} s, "
              f"{mb / cli['wall_s']:.1f} MB/s, {cli['peak_rss_mb']:.0f} MB peak; inner read_recording "
              f"{inner['read_s']:.1f} s ({mb / inner['read_s']:.1f} MB/s), child {inner['wall_s']:.1f} s, "
              f"{inner['peak_rss_mb']:.0f} MB; MNE read+epochs pass {ref['wall_s']:.1f} s, "
              f"{mb / ref['wall_s']:.1f} MB/s, {ref['peak_rss_mb']:.0f} MB")


# -- training windows --------------------------------------------------------------------------------------------
def prepared(root: Path, size: str) -> dict:
    """The fixture and its prepared store (``home_<size>``), made once (by ``test_convert[cli]`` or here)."""
    info = source(root, size)
    home = root / f"home_{size}"
    if not (home / "prepared.ok").exists():
        t = time.perf_counter()
        out = subprocess.run(_prepare_cli(info["src"]), env=_env(home), capture_output=True, text=True)
        assert out.returncode == 0, out.stderr[-4000:]
        (home / "prepared.ok").write_text(f"{time.perf_counter() - t:.1f}\n")
    return info


def _fold0_training_files(info: dict) -> list[dict]:
    """The rest recordings of fold 0's training subjects (the task's own fold function on the table of the store
    under ``$NEUROHARNESS_HOME``)."""
    from neuroharness.loaders.eeg.recordings import Recordings
    from neuroharness.loaders.eeg.loader import store_path
    from neuroharness.tasks.eeg.diagnosis import GROUP_LABELS, VERSIONS, make_folds

    table = Recordings.from_path(store_path("nszed", VERSIONS["nszed"]), "nszed").table
    rest = table[table["condition"] == "rest"]
    labels = {str(s): GROUP_LABELS[str(g)] for s, g in zip(rest["subject"], rest["group"])}
    (fold0,) = [f for f in make_folds(labels, "stratified-group-kfold", 5, 0) if f.index == 0]
    train = set(fold0.train)
    return [info["jobs"][str(f)] | {"recording": str(r)} for r, f, s in zip(rest.index, rest["file"], rest["subject"])
            if str(s) in train]


@pytest.mark.parametrize("way", ["store", "mne-epochs", "braindecode"])
@pytest.mark.parametrize("size", SIZES)
def test_training_windows(benchmark, root, size, way, tmp_path, monkeypatch):
    if way == "braindecode" and (why := _braindecode_imports()):
        pytest.skip(why)
    info = prepared(root, size)
    home = root / f"home_{size}"
    probe = root / f"probe_{size}.npy"
    box = {}
    if way == "store":
        argv = [sys.executable, "-c", STORE_WINDOWS, str(probe)]
    else:
        monkeypatch.setenv("NEUROHARNESS_HOME", str(home))
        jobs = _fold0_training_files(info)
        store_child = _results.get(("windows", size, "store"), {}).get("child", {})
        # the probe is the store's first training window: compared when it starts the recording
        first = store_child.get("first_recording") if store_child.get("first_start") == 0 else None
        jobs.sort(key=lambda j: j["recording"] != first)  # the store's first training recording first
        for j in jobs:
            j["probe"] = j["recording"] == first
        path = tmp_path / "jobs.json"
        path.write_text(json.dumps(jobs))
        argv = [sys.executable, "-c", MNE_EPOCHS if way == "mne-epochs" else BRAINDECODE, str(path), str(SFREQ),
                str(WINDOW_S)]
        if way == "mne-epochs" and first is not None and probe.exists():
            argv.append(str(probe))

    def run():
        box.update(run_child(argv, _env(home), tmp_path))

    benchmark.pedantic(run, rounds=1, iterations=1)
    _record(benchmark, info, box, size)
    child = box["child"] = _last_json(box["stdout"])
    if way == "store":
        t = child["load_s"] + child["fold_s"]
        benchmark.extra_info.update(load_s=round(child["load_s"], 2), fold_s=round(child["fold_s"], 2),
                                    windows=child["windows"], all_windows=child["all_windows"],
                                    windows_per_s=round(child["windows"] / t),
                                    fold_windows_per_s=round(child["windows"] / child["fold_s"]),
                                    x_mb=round(child["windows"] * 19 * 1000 * 4 / 2**20))
    elif way == "braindecode":
        t = child["read_s"] + child["window_s"] + child["iterate_s"]
        benchmark.extra_info.update(read_s=round(child["read_s"], 2), window_s=round(child["window_s"], 2),
                                    iterate_s=round(child["iterate_s"], 2), windows=child["windows"],
                                    windows_per_s=round(child["windows"] / t), x_dtype=child["dtype"],
                                    recordings_read=len(jobs))
        store = _results.get(("windows", size, "store"))
        if store:
            assert child["windows"] == store["child"]["windows"], (child["windows"], store["child"]["windows"])
            print(f"\nNSzED {size}, fold 0 training windows: braindecode (read_raw_edf + RawDataset + "
                  f"create_fixed_length_windows + one __getitem__ pass) {t:.1f} s = {child['windows'] / t:.0f} "
                  f"windows/s, child {box['wall_s']:.1f} s, {box['peak_rss_mb']:.0f} MB; store "
                  f"{store['t']:.1f} s = {child['windows'] / store['t']:.0f} windows/s")
    else:
        t = child["read_s"] + child["epoch_s"] + child["concat_s"]
        benchmark.extra_info.update(read_s=round(child["read_s"], 2), epoch_s=round(child["epoch_s"], 2),
                                    concat_s=round(child["concat_s"], 2), windows=child["windows"],
                                    windows_per_s=round(child["windows"] / t), x_dtype=child["dtype"],
                                    windows_per_s_without_concat=round(child["windows"] / (t - child["concat_s"])),
                                    recordings_read=len(jobs))
        if child["max_abs_diff"] is not None:
            benchmark.extra_info.update(max_abs_diff_uv=round(child["max_abs_diff"] * 1e6, 4))
            assert child["max_abs_diff"] < 1e-9, child["max_abs_diff"]  # volts: float32 rounding of ~1e-5 V
    box["t"] = t
    _results[("windows", size, way)] = box
    if all(("windows", size, w) in _results for w in ("store", "mne-epochs")):
        st, ref = _results[("windows", size, "store")], _results[("windows", size, "mne-epochs")]
        assert st["child"]["windows"] == ref["child"]["windows"], (st["child"]["windows"], ref["child"]["windows"])
        n = st["child"]["windows"]
        benchmark.extra_info.update(ratio_windows_per_s=round((n / st["t"]) / (n / ref["t"]), 2),
                                    store_peak_rss_mb=round(st["peak_rss_mb"]))
        print(f"\nNSzED {size}, fold 0 training windows ({n} x 19 x 1000): store (task load + fold) "
              f"{st['t']:.1f} s = {n / st['t']:.0f} windows/s (fold batch alone {st['child']['fold_s']:.2f} s), "
              f"child {st['wall_s']:.1f} s, {st['peak_rss_mb']:.0f} MB; MNE read_raw_edf + make_fixed_length_epochs "
              f"{ref['t']:.1f} s = {n / ref['t']:.0f} windows/s, child {ref['wall_s']:.1f} s, "
              f"{ref['peak_rss_mb']:.0f} MB")
