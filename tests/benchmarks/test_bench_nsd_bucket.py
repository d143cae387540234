"""Benchmark: one subject's store built from the NSD files (source B): MB/s of betas read, peak memory.

    python -m pytest tests/benchmarks/test_bench_nsd_bucket.py --benchmark-only \\
        --benchmark-columns=min,median,max,rounds

A synthetic subj01 in the NSD bucket layout (``scripts/make_nsd_bucket_fixture.py``): 40 sessions of
``$NH_BENCH_NSD_TRIALS`` trials (default 75, a tenth of NSD's 750) on surfaces of ``$NH_BENCH_NSD_VERTICES``
vertices per hemisphere (default 163842, fsaverage's), a share ``$NH_BENCH_NSD_MASK`` of them in nsdgeneral
(default 0.116; NSD: 19,004 of 163,842),
32 x 32 images: 3.9 GB of betas at the defaults (NSD: 39 GB per subject). Written once into
``$NH_BENCH_NSD_DIR`` (default: a temp dir; reused when there).

Timed (wall clock): ``subject_from_nsd`` (every header checked, every session read in frame blocks, masked,
z-scored, averaged; noise ceiling) then ``write_subject`` into a Zarr group. The files were just written or
read, so they come from the page cache: the figure is the reader's own speed, not a disk's or S3's.

``extra_info`` (from one run in a fresh Python process): ``betas_mb``, ``read_s`` and ``mb_per_s`` (betas MB
/ ``subject_from_nsd`` seconds), ``write_s``, ``peak_rss_mb`` (the process's ``VmHWM``, imports included; it
counts the resident pages of the float32 scratch files, which the kernel may drop), ``peak_anon_mb`` (peak of
``RssAnon`` sampled every 20 ms: the memory the process itself holds), ``baseline_rss_mb`` (the same process
after the imports alone), ``accumulator_rows`` (the images whose running float64 sums were open at once: the
part of the memory that grows with the design).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import bench_dir, load_script

ROOT = Path(__file__).resolve().parents[2]
TRIALS = int(os.environ.get("NH_BENCH_NSD_TRIALS", "75"))
VERTICES = int(os.environ.get("NH_BENCH_NSD_VERTICES", "163842"))
MASK = float(os.environ.get("NH_BENCH_NSD_MASK", "0.116"))

CHILD = r"""
import json, resource, sys, threading, time
import zarr
from neuroharness.loaders.nsd import bucket
from neuroharness.loaders.nsd.store import write_subject

def peak():
    try:  # VmHWM: this process's own peak; ru_maxrss may carry the parent's peak over a vfork + exec
        return next(int(ln.split()[1]) for ln in open("/proc/self/status") if ln.startswith("VmHWM:")) / 1024
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def status(key):
    return next(int(ln.split()[1]) for ln in open("/proc/self/status") if ln.startswith(key + ":")) / 1024

anon = [0.0]
def sample():  # peak of RssAnon: the process's own memory, without the file-backed pages of the scratch maps
    while True:
        anon[0] = max(anon[0], status("RssAnon"))
        time.sleep(0.02)

src, work, out, step = sys.argv[1:5]
result = {"baseline_rss_mb": peak()}
try:
    status("RssAnon")
    threading.Thread(target=sample, daemon=True).start()
except (OSError, StopIteration):
    pass
if step == "build":
    slots = []
    init = bucket._Accumulator.__init__
    def spy(self, *a, **k):
        init(self, *a, **k)
        slots.append(self.n_slots)
    bucket._Accumulator.__init__ = spy
    t = time.perf_counter()
    arrays = bucket.subject_from_nsd(src, "subj01", workdir=work)
    result["read_s"] = time.perf_counter() - t
    t = time.perf_counter()
    write_subject(zarr.open_group(out, mode="w", zarr_format=2), arrays)
    result["write_s"] = time.perf_counter() - t
    result["accumulator_rows"] = max(slots)
result["peak_rss_mb"] = peak()
result["peak_anon_mb"] = anon[0]
print(json.dumps(result))
"""


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    root = bench_dir("NH_BENCH_NSD_DIR", tmp_path_factory, "nsd_bench")
    src = root / f"bucket_{VERTICES}_{TRIALS}_{MASK}"
    if not (src / "nsddata_betas").is_dir():
        load_script("make_nsd_bucket_fixture").write_bucket(src, ("subj01",), trials=TRIALS,
                                                            vertices=(VERTICES, VERTICES), image_size=32,
                                                            mask_fraction=MASK)
    return src


def _child(step: str, src: Path, tmp: Path) -> dict:
    env = {**os.environ, "NEUROHARNESS_QUIET": "1", "NEUROHARNESS_HOME": str(tmp / "home")}
    out = subprocess.run([sys.executable, "-c", CHILD, str(src), str(tmp / "work"), str(tmp / f"{step}.zarr"), step],
                         env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_build_store_from_nsd_files(benchmark, source, tmp_path):
    import zarr

    from neuroharness.loaders.nsd.bucket import check_nsd_subject, subject_from_nsd
    from neuroharness.loaders.nsd.store import write_subject

    betas_mb = check_nsd_subject(source, "subj01")["betas_bytes"] / 2**20
    baseline = _child("imports", source, tmp_path)["peak_rss_mb"]
    child = _child("build", source, tmp_path)

    def build():
        arrays = subject_from_nsd(source, "subj01", workdir=tmp_path / "work")
        write_subject(zarr.open_group(str(tmp_path / "bench.zarr"), mode="w", zarr_format=2), arrays)

    benchmark.pedantic(build, rounds=2, iterations=1)
    attrs = zarr.open_group(str(tmp_path / "bench.zarr"), mode="r")["subj01"].attrs
    benchmark.extra_info.update(
        vertices_per_hemisphere=VERTICES, trials_per_session=TRIALS, sessions=40, betas_mb=round(betas_mb),
        masked_vertices=sum(int(attrs[f"vertices_{h}"]) for h in ("lh", "rh")),
        read_s=round(child["read_s"], 2), mb_per_s=round(betas_mb / child["read_s"]),
        write_s=round(child["write_s"], 2), peak_rss_mb=round(child["peak_rss_mb"]), baseline_rss_mb=round(baseline),
        peak_anon_mb=round(child["peak_anon_mb"]),
        accumulator_rows=child["accumulator_rows"])
