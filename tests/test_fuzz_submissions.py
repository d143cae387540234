"""Fuzzing every submission reader: from a valid submission of each task, malformed variants.

For every task of ``neuroharness tasks list`` a valid submission is built from its
``submission_template`` on small data (synthetic stores from the ``scripts/make_*_fixture.py``
generators; celegans-structure-function on a small synthetic atlas, since its stores come from
wheels; nsd-encoding on a one-subject synthetic challenge release; eeg-schizophrenia on an in-memory
store of 18 subjects, its 5 stratified folds), then hypothesis damages it: at
the content level (columns/fields/arrays dropped, renamed, added, retyped to every dtype family, 2-D,
NaN/inf, rows dropped, duplicated or pointing at unknown ids, empty; for nsd-encoding's 2-D arrays:
rows or columns off by one, transposed, hemispheres swapped, unknown subject or hemisphere names),
at the file level (truncated, bytes flipped, random bytes, empty, a pickle under the
submission's name, archive members escaping the archive, npy headers and zip directories declaring
huge sizes, symbolic links and pickle codecs in Zarr stores, the wrong suffix).

Property: ``task.evaluate(path)`` scores (and must, when nothing was damaged) or raises
:class:`~neuroharness.errors.SubmissionError` whose message starts with the file's path, never
another exception (for nsd-encoding every content damage has a known outcome: valid content scores,
anything else is refused with the message that names the array, its subject and hemisphere, and the
row and column of a NaN); nothing is written (the submission's folder and the cache are unchanged) and
nothing is unpickled. ``--hypothesis-profile=fuzz-long`` runs 1000 examples per test.
"""
from __future__ import annotations

import contextlib
import os
import pickle
import re
import struct
import tempfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import event, given, note
from hypothesis import strategies as st

from helpers import load_script
from neuroharness.errors import SubmissionError

pytestmark = pytest.mark.filterwarnings("ignore")  # zarr's v3-string and numpy's duplicate-name warnings


class _Unpickled:
    """Creates ``path`` (a folder) if it is ever unpickled."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


class Case:
    """One task on small data: ``valid`` is a correct submission as arrays by name; ``kind`` is "table",
    "forecast" (an .npz of fields), "volumes" (one 3-D array per sample) or "encoding" (one 2-D array
    per subject and hemisphere); ``template`` is the task's submission template."""

    def __init__(self, name: str, task, options: dict, kind: str, valid: dict, root: Path, template=None):
        self.name, self.task, self.options, self.kind, self.valid, self.root = name, task, options, kind, valid, root
        self.template = template

    def evaluate(self, path):
        return self.task.evaluate(path, options=self.options)

    def __repr__(self) -> str:  # hypothesis prints the fixture with every failure
        return f"Case({self.name})"


# -- small tasks --------------------------------------------------------------------------------------------
NEURONS = ["ADAL", "ADAR", "AIBL", "AIBR", "ASHL", "ASHR", "AVAL", "AVAR", "RIML", "RIMR", "SMDDL", "SMDDR"]


def _structure_function_task():
    """celegans-structure-function on a 12-neuron synthetic atlas (the real stores need the cect wheels)."""
    import xarray as xr

    from neuroharness.tasks.celegans.structure_function import (
        CelegansStructureFunction, Inputs, Pairs, StructureFunctionData,
    )

    rng = np.random.default_rng(0)
    n = len(NEURONS)
    resp, stim = (a.ravel() for a in np.meshgrid(np.arange(n), np.arange(n), indexing="ij"))
    keep = resp != stim
    resp, stim = resp[keep], stim[keep]
    which = np.where(stim < 3, "test", np.where(stim < 5, "val", "train"))
    splits = {}
    for name in ("train", "val", "test"):
        m = which == name
        sig = rng.random(m.sum()) < 0.3
        sig[:2] = [True, False]
        splits[name] = Pairs(resp[m], stim[m], sig, rng.normal(size=m.sum()))
    data = StructureFunctionData(Inputs(list(NEURONS), xr.Dataset()), splits)
    task = CelegansStructureFunction()
    task.load = lambda options: data
    task.cache_key = lambda options: ()
    return task


def _forecast_task(store_path):
    """celegans-forecast on a 14-worm synthetic activity store (its connectome is not read by evaluate)."""
    from neuroharness.tasks.celegans.forecast import CelegansForecast, ForecastData, build_splits, check_protocols
    from neuroharness.tasks.celegans.windows import RaggedActivity

    store = RaggedActivity(store_path)
    splits = build_splits(store)
    check_protocols(store, splits)
    data = ForecastData(store, splits, None)
    task = CelegansForecast()
    task.load = lambda options: data
    task.cache_key = lambda options: ()
    return task


def _eeg_task():
    """eeg-schizophrenia on 10 patients and 8 controls held in memory (one 6 s recording each at 10 Hz, three
    channels): the submission is per subject of the 5 folds; evaluate reads no store."""
    import pandas as pd
    import xarray as xr

    from neuroharness.loaders.eeg.recordings import Recordings
    from neuroharness.tasks.eeg.diagnosis import EegSchizophrenia

    rows, signals = [], {}
    for i in range(18):
        subject, group = f"S{i:02d}", "patient" if i < 10 else "control"
        rec = f"{subject}_rest_ses-1_dev"
        signals[rec] = xr.Dataset({"eeg": (("channel", "time"), np.full((3, 60), 0.5, np.float32))},
                                  coords={"channel": ["Fz", "Cz", "Pz"]})
        rows.append(dict(recording=rec, subject=subject, group=group, condition="rest", session="1", device="dev",
                         file=f"{rec}.edf", native_sfreq=10.0, sfreq=10.0, n_samples=60, n_channels=3))
    store = Recordings.from_memory("nszed", pd.DataFrame(rows), signals,
                                   {"content_sha256": "e" * 64, "common_sfreq": 10.0})
    return EegSchizophrenia({"nszed": store})


EEG_OPTIONS = {"window_s": "2", "stride_s": "1"}


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    from neuroharness.loaders import get_loader, prepare
    from neuroharness.loaders.vesselgraph import graph_index, open_vesselgraph
    from neuroharness.tasks import get_card
    from neuroharness.tasks.fisbe.instance_segmentation import FisbeInstanceSegmentation
    from neuroharness.tasks.nsd.encoding import NsdEncoding
    from neuroharness.tasks.vesselgraph.link_prediction import VesselGraphLinkPrediction
    from neuroharness.tasks.vesselgraph.vessel_classification import VesselGraphVesselClassification

    root = tmp_path_factory.mktemp("fuzz_submissions")
    rng = np.random.default_rng(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEUROHARNESS_HOME", str(root / "home"))
        load_script("make_fisbe_fixture").write_release(root / "fisbe", n_per_split=1, shape=(16, 32, 32),
                                                        n_neurons=2, seed=0)
        prepare("fisbe", source=root / "fisbe", force=True)
        gen = load_script("make_vesselgraph_fixture")
        nodes, edges, _ = gen.synthetic_graph(400, seed=0)
        gen.write_graph(root / "vg", "vgfuzz", nodes, edges)
        get_loader("vesselgraph").prepare(source=root / "vg")
        (graph,) = graph_index(open_vesselgraph())["graph"]
        load_script("make_celegans_activity_fixture").write_activity_fixture(root / "act", n_worms=14, seed=1,
                                                                           max_len=600)
        activity = prepare("celegans-activity", source=root / "act", force=True)
        # 5 test images, 4 + 6 vertices: every wrong shape (rows or columns off by one, transposed, the other
        # hemisphere's) differs from the right one
        load_script("make_nsd_challenge_fixture").write_release(
            root / "nsd", ("subj01",), with_test_fmri=True, n_train=30, n_test=5, vertices=(4, 6), image_size=8,
            surface=20)
        prepare("nsd-algonauts2023", source=root / "nsd", force=True)

        out = {}
        sf = _structure_function_task()
        tpl = sf.submission_template()
        out["celegans-structure-function"] = Case(
            "celegans-structure-function", sf, {}, "table",
            {"responding": tpl["responding"].to_numpy(dtype=str), "stimulated": tpl["stimulated"].to_numpy(dtype=str),
             "score": rng.random(len(tpl)), "amplitude": rng.normal(size=len(tpl))}, root)
        fc = _forecast_task(activity)
        tpl = fc.submission_template()
        out["celegans-forecast"] = Case(
            "celegans-forecast", fc, {}, "forecast",
            {"protocol": tpl["protocol"].to_numpy(dtype=str), "worm": tpl["worm"].to_numpy(dtype=str),
             "start": tpl["start"].to_numpy(dtype=np.int64),
             "prediction": rng.normal(size=(len(tpl), 10, 302)).astype(np.float32)}, root)
        fb = FisbeInstanceSegmentation()
        data = fb.data()
        labels = {}
        for s in data.samples("test"):
            gt = data.gt(s)
            lab = np.zeros(gt.shape[1:], np.uint16)
            for k in range(gt.shape[0]):
                lab[gt[k]] = k + 1
            labels[s] = lab
        out["fisbe-instance-segmentation"] = Case("fisbe-instance-segmentation", fb, {}, "volumes", labels, root)
        opts = {"graph": graph}
        lp = VesselGraphLinkPrediction()
        tpl = lp.submission_template(options=opts)  # builds and caches the split before any example runs
        out["vesselgraph-link-prediction"] = Case(
            "vesselgraph-link-prediction", lp, opts, "table",
            {"node1": tpl["node1"].to_numpy(), "node2": tpl["node2"].to_numpy(), "score": rng.random(len(tpl))}, root)
        vc = VesselGraphVesselClassification()
        tpl = vc.submission_template(options=opts)
        out["vesselgraph-vessel-classification"] = Case(
            "vesselgraph-vessel-classification", vc, opts, "table",
            {"vessel": tpl["vessel"].to_numpy(), "label": rng.integers(0, 3, len(tpl))}, root)
        ne = NsdEncoding()
        tpl = ne.submission_template()
        subjects = ne.data().subjects
        out["nsd-encoding"] = Case(  # the template's rows, each hemisphere's vertices, finite values
            "nsd-encoding", ne, {}, "encoding",
            {f"{s}_{h}": rng.normal(size=(int((tpl["subject"] == s).sum()), len(sd.columns(h)))).astype(np.float32)
             for s, sd in subjects.items() for h in ("lh", "rh")}, root, tpl)
        eeg = _eeg_task()
        tpl = eeg.submission_template(options=EEG_OPTIONS)
        out["eeg-schizophrenia"] = Case(
            "eeg-schizophrenia", eeg, EEG_OPTIONS, "table",
            {"fold": tpl["fold"].to_numpy(dtype=np.int64), "subject": tpl["subject"].to_numpy(dtype=str),
             "probability": rng.random(len(tpl))}, root)
        listed = {line.split()[0] for line in _tasks_list()}
        assert set(out) == listed, f"tasks list {sorted(listed)}: every task needs a fuzz case"
        for c in out.values():  # the valid submissions score: otherwise a refusal would prove nothing
            assert get_card(c.name) is c.task.card
            assert "main_score" in c.evaluate(_write(c, c.valid, ".npz", root / f"valid-{c.name}"))
        yield out


def _tasks_list() -> list[str]:
    import contextlib
    import io

    from neuroharness.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["tasks", "list"]) == 0
    return [line for line in buf.getvalue().splitlines() if line.strip()]


# -- writing a submission in every format -------------------------------------------------------------------
def _zarr_name(name: str) -> str:
    """The array name ``name`` gets in a Zarr store written by :func:`_write` (never outside the store)."""
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in name) or "_"


def _parquet_column(a: np.ndarray, n: int):
    import pyarrow as pa

    if a.ndim > 1:
        a = list(a.reshape(len(a), -1))
    try:
        arr = pa.array(a)
    except (pa.ArrowException, TypeError, ValueError):
        arr = pa.array(np.asarray(a).astype(str))
    if len(arr) < n:  # a parquet table has one length: pad a short column with nulls
        arr = pa.concat_arrays([arr, pa.nulls(n - len(arr), arr.type)])
    return arr[:n]


def _write(case: Case, arrays: dict, fmt: str, folder: Path, options=None) -> Path:
    """Write ``arrays`` in format ``fmt`` (".npz", ".npz-compressed", ".parquet", ".zarr2", ".zarr3", ".zip")."""
    options = options or {}
    folder.mkdir(parents=True, exist_ok=True)
    suffix = {".npz-compressed": ".npz", ".zarr2": ".zarr", ".zarr3": ".zarr"}.get(fmt, fmt)
    path = folder / f"preds{suffix}"
    if fmt.startswith(".npz"):
        with open(path, "wb") as f:
            (np.savez_compressed if fmt == ".npz-compressed" else np.savez)(f, **arrays)
    elif fmt == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        n = max((len(a) for a in arrays.values() if np.ndim(a)), default=0)
        cols = {k: _parquet_column(np.atleast_1d(a), n) for k, a in arrays.items()}
        if options.get("dictionary"):
            with contextlib.suppress(pa.ArrowException):
                cols = {k: (v.dictionary_encode() if k == options["dictionary"] else v) for k, v in cols.items()}
        pq.write_table(pa.table(cols) if cols else pa.table({}), path)
    else:
        import zarr

        if fmt == ".zip":
            store = zarr.storage.ZipStore(str(path), mode="w")
            group = zarr.open_group(store, mode="w")
        else:
            store = None
            group = zarr.open_group(str(path), mode="w", zarr_format=2 if fmt == ".zarr2" else 3)
        for k, a in arrays.items():
            a = np.asarray(a)
            k = _zarr_name(k)
            try:
                group.create_array(k, data=a)
            except Exception:  # noqa: BLE001 - a dtype this Zarr format cannot hold: store it as text
                group.create_array(k, data=a.astype(str))
        if store is not None:
            store.close()
    return path


# -- content mutations ----------------------------------------------------------------------------------------
DTYPES = ["float16", "float32", "int8", "int64", "uint64", "bool", "complex128", "<U6", "S6", "object",
          "datetime64[s]", "timedelta64[s]"]


def _retype(a: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "object":  # numpy pickles object arrays into an .npz
        b = a.astype(object)
        if b.size:
            b.flat[b.size - 1] = {"not": "a value"}
        return b
    try:
        return a.astype(dtype)
    except (ValueError, TypeError, OverflowError):
        return np.zeros(a.shape, dtype)


def _unknown_id(case: Case, col: str, a: np.ndarray, draw):
    if a.dtype.kind in "US":
        return draw(st.sampled_from(["NOTANEURON", "aval", "", "Nobody2099/worm9", "later", " AVAL"]))
    return draw(st.sampled_from([-1, 10**6, 2**62, int(a.max()) + 1 if len(a) else 1]))


@st.composite
def content_mutations(draw, case: Case, fmt: str):
    """(description, arrays, expected): the valid submission, or one content-level damage of it, and what
    evaluate must do: "score", a pattern its refusal matches, or None (score or refuse)."""
    if case.kind == "encoding":
        return _encoding_mutation(draw, case, fmt)
    if case.name == "eeg-schizophrenia" and draw(st.booleans()):
        return _eeg_mutation(draw, case)
    what, arrays = _mutation(draw, case)
    return what, arrays, "score" if what.startswith("valid") else None


def _mutation(draw, case: Case):
    """(description, arrays): the valid submission, or one content-level damage of it (tables, volumes)."""
    arrays = {k: np.array(v, copy=True) for k, v in case.valid.items()}
    names = list(arrays)
    if case.kind == "volumes":
        kind = draw(st.sampled_from(["valid", "drop", "rename", "extra", "retype", "shape", "negative", "stack",
                                     "huge_label", "empty_stack", "scalar"]))
        s = draw(st.sampled_from(names))
        a = arrays[s]
        if kind == "drop":
            del arrays[s]
        elif kind == "rename":
            arrays[draw(st.sampled_from(["R00X00-nope", s.lower(), s + " ", "../" + s]))] = arrays.pop(s)
        elif kind == "extra":
            arrays["extra_sample"] = a
        elif kind == "retype":
            arrays[s] = _retype(a, draw(st.sampled_from(DTYPES)))
        elif kind == "shape":
            arrays[s] = draw(st.sampled_from([a[:-1], a[None, None], a.reshape(-1), a[:, :, :5], a.T]))
        elif kind == "negative":
            b = a.astype(np.int32)
            b[tuple(draw(st.integers(0, d - 1)) for d in b.shape)] = -draw(st.integers(1, 2**31 - 1))
            arrays[s] = b
        elif kind == "stack":
            arrays[s] = np.stack([a == k for k in range(1, draw(st.integers(1, 4)) + 1)])
        elif kind == "huge_label":
            b = a.astype(np.uint64)
            b[b > 0] += np.uint64(2**63)
            arrays[s] = b
        elif kind == "empty_stack":
            arrays[s] = np.zeros((0, *a.shape), bool)
        elif kind == "scalar":
            arrays[s] = np.array(3, np.uint8)
        return f"{kind} {s}", arrays
    ids = {"celegans-structure-function": ["responding", "stimulated"], "celegans-forecast": ["protocol", "worm", "start"],
           "vesselgraph-link-prediction": ["node1", "node2"], "vesselgraph-vessel-classification": ["vessel"],
           "eeg-schizophrenia": ["fold", "subject"]}[case.name]
    kind = draw(st.sampled_from(["valid", "drop", "rename", "extra", "retype", "nan", "drop_rows", "dup_rows",
                                 "unknown_id", "other_id", "short_column", "two_d", "empty", "huge_value",
                                 "swap_pair"]))
    col = draw(st.sampled_from(names))
    a = arrays[col]
    n = len(a)
    row = draw(st.integers(0, max(n - 1, 0)))
    if kind == "valid":  # rows in any order
        perm = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).permutation(n)
        arrays = {k: v[perm] for k, v in arrays.items()}
    elif kind == "drop":
        del arrays[col]
    elif kind == "rename":
        arrays[draw(st.sampled_from([col.upper(), col + "s", "", "../" + col, col + ".npy"]))] = arrays.pop(col)
    elif kind == "extra":
        arrays[draw(st.sampled_from(["notes", "score2", "pad", "__index_level_0__"]))] = draw(st.sampled_from(
            [np.zeros(n), np.zeros(n + 3), np.zeros((n, 2)), np.array(["x"] * n), np.zeros(0)]))
    elif kind == "retype":
        arrays[col] = _retype(a, draw(st.sampled_from(DTYPES)))
    elif kind == "nan":
        if a.dtype.kind in "US":  # a missing name: null in parquet, an object array in an .npz
            b = a.astype(object)
            value = None
        else:
            b = a.astype(np.float64) if a.dtype.kind not in "fc" else a.copy()
            value = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        if n:
            b[row] = value
        arrays[col] = b
    elif kind == "drop_rows":
        keep = np.ones(n, bool)
        keep[draw(st.lists(st.integers(0, max(n - 1, 0)), min_size=1, max_size=5))] = False
        arrays = {k: v[keep] for k, v in arrays.items()}
    elif kind == "dup_rows":
        extra = draw(st.lists(st.integers(0, max(n - 1, 0)), min_size=1, max_size=3))
        replace = draw(st.booleans())  # duplicates in place of other rows, or added (more rows than the template)
        if replace:
            arrays = {k: np.concatenate([v[: n - len(extra)], v[extra]]) for k, v in arrays.items()}
        else:
            arrays = {k: np.concatenate([v, v[extra]]) for k, v in arrays.items()}
    elif kind in ("unknown_id", "other_id"):
        c = draw(st.sampled_from(ids))
        b = arrays[c]
        if kind == "unknown_id":
            value = _unknown_id(case, c, b, draw)
            b = b.astype(f"<U{max(20, b.dtype.itemsize // 4)}") if b.dtype.kind == "U" else b.astype(np.int64)
        else:  # a real id that makes a pair/window of no scored row, or a duplicate
            value = b[draw(st.integers(0, max(n - 1, 0)))]
        if n:
            b[row] = value
        arrays[c] = b
    elif kind == "short_column":
        arrays[col] = a[: draw(st.integers(0, max(n - 1, 0)))]
    elif kind == "two_d":
        arrays[col] = a.reshape(n, 1) if a.ndim == 1 else a.reshape(n, -1)
    elif kind == "empty":
        arrays = {k: v[:0] for k, v in arrays.items()}
    elif kind == "huge_value":
        if a.dtype.kind in "US":
            b = a.astype(object)
            b[row] = "A" * draw(st.sampled_from([300, 100_000]))
            arrays[col] = b.astype(str)
        elif a.dtype.kind == "f":
            b = a.astype(np.float64)
            b[row] = draw(st.sampled_from([1e308, -1e308, 5e-324]))
        else:
            b = a.astype(np.uint64)
            b[row] = draw(st.sampled_from([2**63, 2**64 - 1]))
        arrays[col] = b
    elif kind == "swap_pair" and case.name == "vesselgraph-link-prediction":
        arrays["node1"], arrays["node2"] = arrays["node2"].copy(), arrays["node1"].copy()
        if n:
            arrays["node2"][row] = arrays["node1"][row]  # a self-pair
    return f"{kind} {col} row {row}", arrays


# -- eeg-schizophrenia: one row per subject (fold, subject, probability), outcomes known -----------------------
def _eeg_mutation(draw, case: Case):
    """(description, arrays, expected) of eeg-schizophrenia's own checks: a subject given another fold, a
    probability outside [0, 1], NaN, an unknown or repeated subject (each refused naming the row and subject),
    or a valid variant (rows in any order, float32, exactly 0 and 1), which scores."""
    arrays = {k: np.array(v, copy=True) for k, v in case.valid.items()}
    fold, subject, p = arrays["fold"], arrays["subject"], arrays["probability"]
    n = len(fold)
    i = draw(st.integers(0, n - 1))
    s, f = subject[i], int(fold[i])
    kind = draw(st.sampled_from(["valid", "wrong_fold", "outside", "nan", "unknown", "repeated"]))
    if kind == "valid":
        how = draw(st.sampled_from(["permuted", "float32", "zero_one"]))
        if how == "permuted":
            perm = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).permutation(n)
            arrays = {k: v[perm] for k, v in arrays.items()}
        elif how == "float32":
            arrays["probability"] = p.astype(np.float32)
        else:
            arrays["probability"] = (p > 0.5).astype(np.float64)
        return f"valid {how}", arrays, "score"
    if kind == "wrong_fold":
        other = draw(st.sampled_from(sorted(set(fold.tolist()) - {f})))
        fold[i] = other
        return f"wrong_fold row {i}", arrays, (rf"row {i}: subject {s} is given fold {other}, but it belongs to fold "
                                               rf"{f}; expected each subject with the fold of the template")
    if kind == "outside":
        value = draw(st.sampled_from([1.5, -0.1, 2.0, 1.0000001, -1e-9]))
        p[i] = value
        return f"outside row {i}", arrays, (rf"row {i}: subject {s} \(fold {f}\) has probability "
                                            rf"{re.escape(repr(value))}; expected a probability of 'patient' in "
                                            r"\[0, 1\] \(1 value\(s\) outside\)")
    if kind == "nan":
        p[i] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        return f"nan row {i}", arrays, rf"column 'probability' has 1 NaN/inf value\(s\), first at row {i}"
    if kind == "unknown":
        name = draw(st.sampled_from(["S99", "s00", "S00 ", "", "NSZ001"]))
        subject = subject.astype("<U8")
        subject[i] = name
        arrays["subject"] = subject
        return f"unknown row {i}", arrays, (rf"row {i}: subject {re.escape(repr(name))} is not one of the {n} scored "
                                            r"subjects of nszed \(rest\)")
    j = draw(st.integers(0, n - 2))
    j += j >= i  # another row
    subject[j], fold[j] = s, f
    return f"repeated rows {i} {j}", arrays, (rf"row {max(i, j)}: subject {s} appears again \(first at row "
                                              rf"{min(i, j)}\); expected each subject once")


# -- nsd-encoding: 2-D arrays named <subject>_<hemisphere> ---------------------------------------------------
NOT_NAMED = ["subj01_LH", "SUBJ01_lh", "subj01_lh ", " subj01_lh", "subj01_lh.npy", "subj1_lh", "subj001_lh", "lh",
             "subj01-lh", "subj01__lh", "subj01_lh_", "subj01_xh", "subj01_both", "subj01", "", "subj01_lh\n",
             "subj01_rh.lh", "subj01_l\u0127"]
ESCAPING = ["../subj01_lh", "/subj01_lh", "a/../../subj01_lh", "..\\subj01_lh", "C:subj01_lh", "sub/subj01_lh",
            "subj01_lh/../subj01_rh"]
UNKNOWN_SUBJECT = ["subj09_lh", "subj00_rh", "subj99_lh", "subj\u0661\u0662_lh"]  # Arabic-Indic digits match \d
OTHER_SUBJECT = ["subj02_lh", "subj08_rh"]  # NSD subjects not scored with subject=subj01
NSD_SUBJECTS = [f"subj0{i}" for i in range(1, 9)]
REFUSED_DTYPES = [d for d in DTYPES if d != "float32"] + ["longdouble", "int32", "uint8"]


def _named(name: str, fmt: str) -> str:
    """The message part that refuses an array (or a member) called ``name`` when written as ``fmt``."""
    stored = name if fmt.startswith(".npz") else _zarr_name(name)
    quoted = re.escape(repr(stored))
    if fmt.startswith(".npz") and name in ESCAPING:  # the zip member is refused, or its name once zipfile cleans it
        return r"(member '[^']*' is a path outside the archive|array '[^']*' is not named)"
    m = re.fullmatch(r"(subj\d\d)_(lh|rh)", stored)
    if m is None:
        return f"array {quoted} is not named <subject>_<hemisphere>"
    if m.group(1) not in NSD_SUBJECTS:
        return f"array {quoted} names an unknown subject {re.escape(repr(m.group(1)))}"
    assert m.group(1) != "subj01", f"{name!r} is written as a scored array's name"
    return f"array {quoted}: subject {m.group(1)} is not scored with option subject=subj01"


def _encoding_mutation(draw, case: Case, fmt: str):
    """(description, arrays, expected): the valid submission or one damage of it, and what evaluate must do:
    "score", or a regular expression the refusal matches after "<path>: "."""
    arrays = {k: np.array(v, copy=True) for k, v in case.valid.items()}
    names = list(arrays)
    s = draw(st.sampled_from(names))
    a = arrays[s]
    subject, hemi = s.split("_")
    n, v = a.shape
    array = rf"array {re.escape(repr(s))} \(subject {subject}, hemisphere {hemi}\)"
    kind = draw(st.sampled_from(["valid", "drop", "drop_all", "rename", "extra", "retype", "shape", "swap",
                                 "nonfinite"]))
    if kind == "valid":  # finite floats of the right shape score, whatever their order, layout or size
        how = draw(st.sampled_from(["as is", "float64", "fortran", "permuted", "constant", "large", "tiny",
                                    "negative zero", "big-endian"]))
        if how == "float64":
            arrays[s] = a.astype(np.float64)
        elif how == "fortran":
            arrays[s] = np.asfortranarray(a)
        elif how == "permuted":
            arrays[s] = a[np.random.default_rng(draw(st.integers(0, 2**32 - 1))).permutation(n)]
        elif how == "constant":  # r undefined (counted 0)
            arrays[s] = np.full_like(a, draw(st.sampled_from([0.0, 1.5, -3.0])))
        elif how == "large":  # up to a few times the scale: near float32's largest (3.4e38) or far beyond
            scale, dtype = draw(st.sampled_from([(1e29, np.float32), (5e37, np.float32), (1e300, np.float64)]))
            arrays[s] = (a.astype(np.float64) * scale).astype(dtype)
        elif how == "tiny":
            arrays[s] = a.astype(np.float64) * 5e-324
        elif how == "negative zero":
            arrays[s] = np.full_like(a, -0.0)
        elif how == "big-endian":  # float32 all the same; the .npz reader refuses dtype >f4, Zarr v3 stores it native
            arrays[s] = a.astype(draw(st.sampled_from([">f4", ">f8"])))
            return f"valid {how} {s}", arrays, None
        return f"valid {how} {s}", arrays, "score"
    if kind == "drop":
        del arrays[s]
        return f"drop {s}", arrays, rf"no entry for 1 of 2 test arrays \(one per subject and hemisphere\): {s}$"
    if kind == "drop_all":
        return "drop_all", {}, r"no entry for 2 of 2 test arrays .*: subj01_lh, subj01_rh$"
    if kind in ("rename", "extra"):
        name = draw(st.sampled_from(NOT_NAMED + ESCAPING + UNKNOWN_SUBJECT + OTHER_SUBJECT))
        if kind == "rename":
            del arrays[s]
        arrays[name] = draw(st.sampled_from([a, a[:1], np.zeros(0), np.array(["x"])]))
        return f"{kind} {s} as {name!r}", arrays, _named(name, fmt)
    if kind == "retype":
        dtype = draw(st.sampled_from(REFUSED_DTYPES))
        arrays[s] = _retype(a, dtype)
        return f"retype {s} {dtype}", arrays, rf"{array} has dtype "
    if kind == "shape":
        how, b = draw(st.sampled_from([
            ("rows-1", a[:-1]), ("rows+1", np.vstack([a, a[:1]])), ("cols-1", a[:, :-1]),
            ("cols+1", np.hstack([a, a[:, :1]])), ("transposed", a.T), ("1-D", a.reshape(-1)), ("3-D", a[None]),
            ("3-D stack", np.stack([a, a], -1)), ("no rows", a[:0]), ("no columns", a[:, :0]),
            ("scalar", np.array(3.0, np.float32))]))
        arrays[s] = b
        shape = ", ".join(map(str, b.shape))
        return f"shape {how} {s}", arrays, rf"{array} has shape \({shape},?\); expected \({n}, {v}\)"
    if kind == "swap":  # lh's rows under rh's name and the reverse: checked in order, lh first
        arrays = {names[0]: arrays[names[1]], names[1]: arrays[names[0]]}
        return "swap", arrays, (rf"array '{names[0]}' \(subject subj01, hemisphere lh\) has shape "
                                rf"\({n}, {case.valid[names[1]].shape[1]}\)")
    # nonfinite: one value (or all) NaN/inf; the message names the first bad cell by row, nsd_id and column
    value = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    b = a.astype(draw(st.sampled_from([np.float32, np.float64])))
    if draw(st.booleans()):
        i, j = 0, 0
        b[:] = value
    else:
        i, j = draw(st.integers(0, n - 1)), draw(st.integers(0, v - 1))
        b[i, j] = value
    arrays[s] = b
    row = case.template.iloc[i]
    return f"nonfinite {value} {s} [{i}, {j}]", arrays, (
        rf"{array} row {i} \(nsd_id {row['nsd_id']}, split_row {row['split_row']}\), column {j} \(vertex {j} of "
        rf"{hemi}, fsaverage vertex \d+\) is {value}; expected finite values")


# -- file mutations --------------------------------------------------------------------------------------------
def _zip_append(path: Path, name: str, data: bytes) -> None:
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr(name, data)


def _npy_bytes(shape, descr="<f8", data=b"") -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": tuple(shape)})
    return buf.getvalue() + data


def _patch_directory(path: Path, offset: int, fmt: str, value: int, local: int | None = None) -> None:
    """Write ``value`` at ``offset`` of every central directory entry (and at ``local`` of every local header)."""
    blob = bytearray(path.read_bytes())
    for sig, at_ in ((b"PK\x01\x02", offset), (b"PK\x03\x04", local)):
        if at_ is None:
            continue
        at = blob.find(sig)
        while at >= 0:
            blob[at + at_ : at + at_ + struct.calcsize(fmt)] = struct.pack(fmt, value)
            at = blob.find(sig, at + 4)
    path.write_bytes(bytes(blob))


def _forge_sizes(path: Path, size: int) -> None:
    """Declare ``size`` uncompressed bytes for every member in the zip's central directory."""
    _patch_directory(path, 24, "<I", size)


COMMON = ["none", "truncate", "flip", "random", "empty", "pickle", "limit"]
FILE_MUTATIONS = {  # what applies to each format
    "zip": COMMON + ["escape", "huge_header", "bad_header", "forged_sizes", "suffix", "dup_member", "dir_member",
                     "encrypted", "method", "short_data"],
    "parquet": COMMON + ["suffix"],
    "folder": COMMON + ["symlink", "pickle_codec", "no_metadata", "bad_json", "huge_chunks", "group_member"],
}


def _family(fmt: str) -> str:
    return "zip" if fmt.startswith(".npz") or fmt == ".zip" else "parquet" if fmt == ".parquet" else "folder"


@st.composite
def file_mutations(draw, case: Case, formats):
    fmt = draw(st.sampled_from(formats))
    kind = draw(st.sampled_from(FILE_MUTATIONS[_family(fmt)]))
    return fmt, kind, draw(st.randoms(use_true_random=False))


def _some_file(path: Path, rnd) -> Path | None:
    """``path`` if it is a file, else a random file of the folder (None if it holds none)."""
    if path.is_file():
        return path
    files = sorted(p for p in path.rglob("*") if p.is_file())
    return rnd.choice(files) if files else None


def _apply(kind: str, path: Path, rnd, sentinel: Path, env: dict) -> Path:
    """Damage the written submission at ``path``; returns the path to evaluate."""
    if kind == "none":
        return path
    is_zip = path.is_file() and zipfile.is_zipfile(path)
    target = _some_file(path, rnd)
    if kind == "truncate" and target is not None:
        data = target.read_bytes()
        target.write_bytes(data[: rnd.randrange(len(data))] if data else b"")
    elif kind == "flip" and target is not None:
        data = bytearray(target.read_bytes())
        for _ in range(rnd.randint(1, 8)):
            if data:
                data[rnd.randrange(len(data))] ^= 1 << rnd.randrange(8)
        target.write_bytes(bytes(data))
    elif kind == "random" and target is not None:
        target.write_bytes(bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 3000))))
    elif kind == "empty":
        if path.is_file():
            path.write_bytes(b"")
        else:
            for p in sorted(path.rglob("*"), reverse=True):
                p.unlink() if p.is_file() else p.rmdir()
    elif kind == "pickle":
        if path.is_dir():
            import shutil

            shutil.rmtree(path)
        path.write_bytes(pickle.dumps({"score": _Unpickled(sentinel), "data": np.zeros(3)},
                                      protocol=rnd.choice([2, 3, 4, 5])))
    elif kind == "escape" and is_zip:
        _zip_append(path, rnd.choice(["../evil.npy", "/abs.npy", "C:evil.npy", "a/../../evil.npy", "..\\evil.npy",
                                      "../.zgroup"]), _npy_bytes((3,), data=b"\0" * 24))
    elif kind == "huge_header" and is_zip:
        names = [n for n in zipfile.ZipFile(path).namelist() if n.endswith(".npy")]
        name = rnd.choice(names) if names and rnd.random() < 0.5 else "huge.npy"
        shape = rnd.choice([(2**40,), (10**6, 10**6), (3, 2**62), (2**20, 10, 302)])
        with zipfile.ZipFile(path) as zf:
            members = {n: zf.read(n) for n in zf.namelist()}
        members[name] = _npy_bytes(shape, rnd.choice(["<f8", "<f4", "<U1000", "|O", "<i8"]), b"\0" * 64)
        with zipfile.ZipFile(path, "w") as zf:
            for n, d in members.items():
                zf.writestr(n, d)
    elif kind == "bad_header" and is_zip:
        bad = rnd.choice([b"\x93NUMPY\x01\x00\xff\xff" + b"{" * 40, b"\x93NUMPY\x09\x00\x10\x00{'descr': '<f8'}  \n",
                          b"\x93NUMPY\x01\x00\x46\x00{'descr': '<f8', 'fortran_order': False, 'shape': (-5,), }" + b" " * 10 + b"\n",
                          b"\x93NUMPY\x01\x00\x46\x00{'descr': 'zz9', 'fortran_order': False, 'shape': (5,), }" + b" " * 10 + b"\n",
                          b"\x93NUMPY\x01\x00\x46\x00{'descr': '<f8', 'fortran_order': 3, 'shape': (5,)}" + b" " * 16 + b"\n",
                          b"\x93NUMPY\x03\x00\x46\x00\x00\x00{'descr': '<f8', 'fortran_order': False, 'shape': (5,), }" + b" " * 8 + b"\n",
                          b"\x93NUMP", b""])
        with zipfile.ZipFile(path) as zf:
            members = {n: zf.read(n) for n in zf.namelist()}
        if members:
            members[rnd.choice(sorted(members))] = bad
        with zipfile.ZipFile(path, "w") as zf:
            for n, d in members.items():
                zf.writestr(n, d)
    elif kind == "short_data" and is_zip:  # a member cut inside its data: an .npy keeps its (valid) header
        with zipfile.ZipFile(path) as zf:
            members = {n: zf.read(n) for n in zf.namelist()}
        data_members = sorted(n for n in members if n.rsplit("/", 1)[-1] not in (".zgroup", ".zattrs", ".zarray",
                                                                                  "zarr.json", ".zmetadata"))
        if data_members:
            name = rnd.choice(data_members)
            data = members[name]
            start = 0
            if name.endswith(".npy"):
                import io

                f = io.BytesIO(data)
                with contextlib.suppress(Exception):
                    np.lib.format.read_magic(f)
                    np.lib.format.read_array_header_1_0(f)
                    start = f.tell()
            members[name] = data[: rnd.randint(start, max(start, len(data) - 1))]
            with zipfile.ZipFile(path, "w") as zf:
                for n, d in members.items():
                    zf.writestr(n, d)
    elif kind == "forged_sizes" and is_zip:
        _forge_sizes(path, rnd.choice([0, 1, 2**31, 2**32 - 1]))
    elif kind == "dup_member" and is_zip:
        names = zipfile.ZipFile(path).namelist()
        if names:
            _zip_append(path, rnd.choice(names), _npy_bytes((2,), data=b"\0" * 16))
    elif kind == "dir_member" and is_zip:
        _zip_append(path, "sub/", b"")
        _zip_append(path, f"sub/{rnd.choice(['score', 'x', 'prediction'])}.npy", _npy_bytes((2,), data=b"\0" * 16))
    elif kind == "encrypted" and is_zip:
        _patch_directory(path, 8, "<H", 0x1, local=6)  # the general purpose flag: "encrypted"
    elif kind == "method" and is_zip:
        _patch_directory(path, 10, "<H", rnd.choice([1, 6, 9, 97, 99]), local=8)  # shrink, implode, deflate64, ..., AES
    elif kind == "suffix" and path.is_file():
        other = path.with_suffix(rnd.choice([".parquet", ".npz", ".zarr", ".zip", ".npy", ".csv", ".pkl", ""]))
        path.rename(other)
        return other
    elif kind == "symlink" and path.is_dir():
        secret = sentinel.parent / "outside.bin"
        secret.write_bytes(b"\0" * 64)
        files = sorted(p for p in path.rglob("*") if p.is_file())
        link = rnd.choice(files) if files and rnd.random() < 0.8 else path / "extra"
        if link.exists():
            link.unlink()
        link.symlink_to(rnd.choice([secret, Path("/etc/hostname"), Path("../../outside.bin"), path]))
    elif kind == "pickle_codec" and path.is_dir():
        import json

        metas = [p for p in path.rglob("*") if p.name in (".zarray", "zarr.json") and p.parent != path]
        if metas:
            p = rnd.choice(metas)
            meta = json.loads(p.read_text())
            if p.name == ".zarray":
                meta["filters"] = [{"id": "pickle", "protocol": 5}]
            else:
                meta["codecs"] = [{"name": "numcodecs.pickle", "configuration": {"protocol": 5}}]
            p.write_text(json.dumps(meta))
            for chunk in [c for c in p.parent.rglob("*") if c.is_file() and c.name not in (".zarray", ".zattrs", "zarr.json")]:
                chunk.write_bytes(pickle.dumps(_Unpickled(sentinel)))
    elif kind == "no_metadata" and path.is_dir():
        metas = [p for p in path.rglob("*") if p.name in (".zarray", ".zgroup", "zarr.json", ".zmetadata")]
        if metas:
            rnd.choice(metas).unlink()
    elif kind == "bad_json" and path.is_dir():
        metas = [p for p in path.rglob("*") if p.name in (".zarray", ".zgroup", "zarr.json", ".zattrs")]
        if metas:
            p = rnd.choice(metas)
            p.write_text(rnd.choice(['{"shape": [1e30], "zarr_format": 2}', "[]", "{", '{"zarr_format": 9}',
                                     p.read_text().replace("[", '["x", ', 1)]))
    elif kind == "huge_chunks" and path.is_dir():
        import json

        metas = [p for p in path.rglob("*") if p.name in (".zarray", "zarr.json") and p.parent != path]
        if metas:
            p = rnd.choice(metas)
            meta = json.loads(p.read_text())
            huge = rnd.choice([2**40, 10**12, 2**62])
            if rnd.random() < 0.5:
                meta["shape"] = [huge] * len(meta.get("shape", [1]))
            elif p.name == ".zarray":
                meta["chunks"] = [huge] * len(meta.get("chunks", [1]))
            else:
                meta.setdefault("chunk_grid", {"name": "regular", "configuration": {}})
                meta["chunk_grid"]["configuration"]["chunk_shape"] = [huge] * len(meta.get("shape", [1]))
            p.write_text(json.dumps(meta))
    elif kind == "group_member" and path.is_dir():  # a group among the arrays, holding one of them or nothing
        import json
        import shutil

        v3 = (path / "zarr.json").is_file()
        nested = path / rnd.choice(["nested", "subj01", "predictions"])
        nested.mkdir(exist_ok=True)
        (nested / ("zarr.json" if v3 else ".zgroup")).write_text(json.dumps(
            {"zarr_format": 3, "node_type": "group", "attributes": {}} if v3 else {"zarr_format": 2}))
        arrays = sorted(p for p in path.iterdir() if p.is_dir() and p != nested)
        if arrays and rnd.random() < 0.5:
            shutil.move(str(rnd.choice(arrays)), str(nested))
    elif kind == "limit":
        env["NEUROHARNESS_MAX_SUBMISSION_BYTES"] = str(rnd.choice([1, 100, 4096, 50_000]))
    return path


# -- the property -------------------------------------------------------------------------------------------------
def _tree(*roots: Path) -> dict:
    out = {}
    for r in roots:
        for dirpath, dirs, files in os.walk(r):
            for f in dirs + files:
                p = os.path.join(dirpath, f)
                st_ = os.lstat(p)
                out[p] = (st_.st_size, st_.st_mtime_ns)
    return out


def _check(case: Case, path: Path, sentinel: Path, expected: str | None, what: str) -> None:
    """``expected``: "score", a pattern the refusal's message matches after "<path>: ", or None (either)."""
    home = Path(os.environ["NEUROHARNESS_HOME"])
    before = _tree(path.parent, home)
    try:
        result = case.evaluate(path)
    except SubmissionError as e:
        note(f"refused: {e}")
        event(f"{what}: refused")
        assert expected != "score", f"a valid submission was refused: {e}"
        assert str(e).startswith(f"{path}: "), f"the message does not start with the file's path: {e}"
        if expected is not None:
            assert re.search(expected, str(e)[len(f"{path}: "):]), f"the message does not match {expected!r}: {e}"
    else:
        note(f"scored: {result}")
        event(f"{what}: scored")
        assert expected in (None, "score"), f"an invalid submission scored {result}; expected a refusal {expected!r}"
        assert "main_score" in result
        if case.kind == "encoding":  # its metrics are finite numbers (what records hold), whatever the predictions
            bad = {k: v for k, v in result.items() if not np.isfinite(v)}
            assert not bad, f"metrics not finite: {bad}"
    assert _tree(path.parent, home) == before, "evaluate wrote or changed files"
    assert not sentinel.exists(), "a pickle was loaded"


def _formats(case: Case) -> list[str]:
    return {"table": [".npz", ".npz-compressed", ".parquet", ".zarr2", ".zarr3"], "forecast": [".npz", ".npz-compressed"],
            "volumes": [".npz", ".npz-compressed", ".zarr2", ".zarr3", ".zip"],
            "encoding": [".npz", ".npz-compressed", ".zarr2", ".zarr3", ".zip"]}[case.kind]


TASKS = ["celegans-structure-function", "celegans-forecast", "eeg-schizophrenia", "fisbe-instance-segmentation",
         "nsd-encoding", "vesselgraph-link-prediction", "vesselgraph-vessel-classification"]


def _run(case: Case, arrays: dict, fmt: str, kind: str, rnd, expected: str | None, write_options=None,
         what: str = "") -> None:
    with tempfile.TemporaryDirectory(dir=case.root) as tmp, pytest.MonkeyPatch.context() as mp:
        folder = Path(tmp) / "sub"
        sentinel = Path(tmp) / "unpickled"
        path = _write(case, arrays, fmt, folder, write_options)
        env = {}
        path = _apply(kind, path, rnd, sentinel, env)
        for k, v in env.items():
            mp.setenv(k, v)
        _check(case, path, sentinel, None if env else expected, what)


@pytest.mark.parametrize("name", TASKS)
@given(data=st.data())
def test_damaged_content_is_scored_or_refused_naming_the_file(cases, name, data):
    case = cases[name]
    fmt = data.draw(st.sampled_from(_formats(case)), label="format")
    what, arrays, expected = data.draw(content_mutations(case, fmt), label="content")
    options = {}
    if fmt == ".parquet" and data.draw(st.booleans(), label="dictionary-encoded"):
        options["dictionary"] = data.draw(st.sampled_from(sorted(arrays) or ["x"]))
    note(f"{name}: {what} as {fmt}")
    _run(case, arrays, fmt, "none", None, expected, options, what.split()[0])


@pytest.mark.parametrize("name", TASKS)
@given(data=st.data())
def test_damaged_files_are_refused_naming_the_file(cases, name, data):
    case = cases[name]
    fmt, kind, rnd = data.draw(file_mutations(case, _formats(case)), label="file")
    note(f"{name}: {kind} on {fmt}")
    _run(case, case.valid, fmt, kind, rnd, "score" if kind == "none" else None, what=f"{kind} on {fmt}")


# -- named pipes: opening one for reading blocks until something writes to it --------------------------------
def _answer_readers(pipe: Path, stop: threading.Event, opened: list) -> None:
    """Give every reader of ``pipe`` an end of file (so a blocked open returns), counting them."""
    while not stop.is_set():
        try:
            fd = os.open(pipe, os.O_WRONLY | os.O_NONBLOCK)  # fails (ENXIO) while no one has it open for reading
        except OSError:
            stop.wait(0.005)
            continue
        opened.append(pipe)
        os.close(fd)
        stop.wait(0.005)


@pytest.mark.parametrize("where", ["file", "chunk"])
@pytest.mark.parametrize("name", TASKS)
def test_named_pipes_are_refused_unopened(cases, name, where):
    """A FIFO as the submission (or as a file inside a Zarr folder) is refused without being opened: an open
    would wait forever for a writer (here a thread answers it, so the test ends and counts the opens)."""
    case = cases[name]
    fmt = _formats(case)[0] if where == "file" else ".zarr2"
    if fmt not in _formats(case):
        pytest.skip(f"{name} takes no Zarr folder")
    with tempfile.TemporaryDirectory(dir=case.root) as tmp:
        path = _write(case, case.valid, fmt, Path(tmp) / "sub")
        if where == "file":
            pipe = path
            path.unlink()
        else:
            pipe = max((p for p in path.rglob("*") if p.is_file() and not p.name.startswith((".z", "zarr."))),
                       key=lambda p: p.stat().st_size)
            pipe.unlink()
        os.mkfifo(pipe)
        stop, opened = threading.Event(), []
        writer = threading.Thread(target=_answer_readers, args=(pipe, stop, opened), daemon=True)
        writer.start()
        try:
            with pytest.raises(SubmissionError) as e:
                case.evaluate(path)
        finally:
            stop.set()
            writer.join()
        assert not opened, f"evaluate opened the named pipe {pipe} {len(opened)} time(s): {e.value}"
        assert str(e.value).startswith(f"{path}: ")
