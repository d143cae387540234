"""Hugging Face `datasets` export (neuroharness.loaders.hf_export): stores and task splits -> Arrow and back.

Every exporter is checked the same way: export the store with ``save_to_disk``, read it back with
``datasets.load_from_disk`` (and, for some, after a real ``push_to_hub`` to the local Hub of
tests/hub_server.py, with ``load_dataset``) and compare with the store: dtypes, shapes, row counts,
names, and values byte for byte (so NaN positions too). Stores come from the C. elegans wheels where
they are installed (skipped otherwise) and from the fixture generators in scripts/. Bad requests
(unknown format or name, unprepared store, bad folder, failures while writing) are clear errors that
leave nothing behind.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

datasets = pytest.importorskip("datasets")

from helpers import load_script  # noqa: E402

from neuroharness.cli import main  # noqa: E402
from neuroharness.errors import DataFormatError, NeuroharnessError, UsageError  # noqa: E402
from neuroharness.loaders import get_loader, open_dataset  # noqa: E402
from neuroharness.loaders.hf_export import EXPORTERS, MANIFEST, export, to_hf_dataset  # noqa: E402

HAVE_CECT = importlib.util.find_spec("cect") is not None
HAVE_WNA = importlib.util.find_spec("wormneuroatlas") is not None
needs_cect = pytest.mark.skipif(not HAVE_CECT, reason="needs the cect wheel installed (pip install --no-deps cect==0.3.5)")
needs_wna = pytest.mark.skipif(not HAVE_WNA, reason="needs the wormneuroatlas wheel installed "
                                                    "(pip install --no-deps wormneuroatlas==0.0.7.3)")
ROOT = Path(__file__).resolve().parents[1]


# -- stores, prepared once for the module in a cache of its own --------------------------------------
@pytest.fixture(scope="module", autouse=True)
def home(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEUROHARNESS_HOME", str(root))
        yield root


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    return tmp_path_factory.mktemp("hf_src")


@pytest.fixture(scope="module")
def activity(src):
    gen = load_script("make_celegans_activity_fixture")
    gen.write_activity_fixture(src / "act", n_worms=14, seed=3, max_len=900)
    get_loader("celegans-activity").prepare(src / "act")
    return open_dataset("celegans-activity").load()


@pytest.fixture(scope="module")
def vesselgraph(src):
    gen = load_script("make_vesselgraph_fixture")
    gen.write_release(src / "vg", graphs={"synthetic_graph_1": 300, "synthetic_graph_2": 240}, seed=1, atlas=True)
    get_loader("vesselgraph").prepare(src / "vg")
    return open_dataset("vesselgraph")


@pytest.fixture(scope="module")
def eeg(src):
    pytest.importorskip("mne")
    gen = load_script("make_eeg_fixture")
    gen.write_nszed(src / "nszed", n_patients=2, n_controls=2, seconds=8)
    gen.write_repod(src / "repod", n_patients=2, n_controls=1, seconds=6)
    get_loader("nszed").prepare(src / "nszed")
    get_loader("repod-schizophrenia").prepare(src / "repod")
    return {name: open_dataset(name) for name in ("nszed", "repod-schizophrenia")}


@pytest.fixture(scope="module")
def nsd(src):
    gen = load_script("make_nsd_challenge_fixture")
    small = dict(n_train=6, n_test=3, vertices=(5, 7), image_size=8, surface=30)
    gen.write_release(src / "nsd", ("subj01",), **small)
    gen.write_release(src / "nsd", ("subj02",), with_test_fmri=True, **small)
    get_loader("nsd-algonauts2023").prepare(src / "nsd")
    return open_dataset("nsd-algonauts2023")


@pytest.fixture(scope="module")
def fisbe(src):
    """Six samples of one size (16, 32, 32), three neurons each (partly-labeled ones with an unlabeled one)."""
    gen = load_script("make_fisbe_fixture")
    rel = gen.write_release(src / "fisbe", n_per_split=1, shape=(16, 32, 32), n_neurons=3, seed=2)
    get_loader("fisbe").prepare(src / "fisbe")
    return rel


def same(got, want, what: str) -> None:
    """Equal dtype, shape and bytes (NaN positions and payloads included)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype}, store {want.dtype}"
    assert got.shape == want.shape, f"{what}: shape {got.shape}, store {want.shape}"
    assert np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(want).tobytes(), f"{what}: values differ"


def text(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(values).ravel()]


def meta(feature) -> dict:
    while getattr(feature, "id", None) is None and hasattr(feature, "feature"):
        feature = feature.feature
    return json.loads(feature.id) if feature.id else {}


def typed(feature, *expected) -> bool:
    """The feature's type equals each of ``expected`` (the ``id`` metadata aside: repr leaves it out)."""
    return all(repr(feature) == repr(e) for e in expected)


def numpy_rows(ds):
    return ds.with_format("numpy", dtype=None)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def check_provenance(ds, store_attrs, card_name: str) -> None:
    info = ds.info
    assert store_attrs["content_sha256"] in info.description
    assert info.license == store_attrs["license"] and info.citation == store_attrs["citation"]
    assert str(info.version) == f"{store_attrs['dataset_version']}.0" and info.dataset_name == card_name


# -- C. elegans ---------------------------------------------------------------------------------------
def test_celegans_activity_round_trip(activity, tmp_path):
    result = export("celegans-activity", tmp_path / "act")
    assert result.rows == {"": {None: 14}} and result.load == [f"datasets.load_from_disk({str(tmp_path / 'act')!r})"]
    ds = datasets.load_from_disk(str(tmp_path / "act"))
    f = ds.features
    assert typed(f["calcium"], datasets.Array2D((None, 302), "float32"))
    assert typed(f["calcium_smooth"], datasets.Array2D((None, 302), "float32"))
    assert typed(f["time"], datasets.List(datasets.Value("float64")))
    assert typed(f["labeled"], datasets.List(datasets.Value("bool"), length=302))
    assert (f["dt"].dtype, f["n_unlabeled"].dtype, f["n_samples"].dtype) == ("float64", "int32", "int64")
    assert isinstance(f["source_dataset"], datasets.ClassLabel)
    assert meta(f["calcium"])["units"] == activity.calcium.attrs["units"]
    assert meta(f["calcium"])["long_name"] == activity.calcium.attrs["long_name"]
    assert meta(f["calcium"])["dims"] == ["time", "neuron"] and meta(f["time"])["units"] == "s"
    assert meta(f["labeled"])["labels"]["neuron"] == text(activity.neuron.values)
    check_provenance(ds, activity.attrs, "celegans-activity")
    rows = numpy_rows(ds)
    assert len(ds) == activity.sizes["worm"]
    nan_rows = 0
    for w in range(len(ds)):
        r = rows[w]
        s, n = int(activity.worm_start[w]), int(activity.row_size[w])
        for v in ("calcium", "calcium_smooth", "time"):
            same(r[v], activity[v].values[s:s + n], f"worm {w} {v}")
        same(r["labeled"], activity.labeled.values[w], f"worm {w} labeled")
        for v in ("dt", "n_unlabeled"):
            same(r[v], activity[v].values[w], f"worm {w} {v}")
        assert int(r["n_samples"]) == n and str(r["worm"]) == str(activity.worm.values[w])
        assert f["source_dataset"].int2str(int(r["source_dataset"])) == str(activity.source_dataset.values[w])
        assert text(r["neuron"]) == text(activity.neuron.values)
        nan_rows += int(np.isnan(r["calcium"]).any())
    assert nan_rows == len(ds)  # every worm misses some neurons: NaN survived
    manifest = json.loads((tmp_path / "act" / MANIFEST).read_text())
    assert manifest["checksums"] == {"celegans-activity": activity.attrs["content_sha256"]}


@needs_cect
def test_celegans_connectome_round_trip(tmp_path):
    get_loader("celegans-connectome").prepare()
    store = open_dataset("celegans-connectome").load()
    export("celegans-connectome", tmp_path / "c")
    ds = datasets.load_from_disk(str(tmp_path / "c"))
    assert len(ds) == 14 and ds["annotation"] == text(store.annotation.values)
    f = ds.features
    assert typed(f["chemical"], datasets.Array2D((302, 302), "float32"), f["gap_junction"])
    assert typed(f["position"], datasets.Array2D((302, 3), "float32"))
    assert meta(f["chemical"])["dims"] == ["pre", "post"]
    assert meta(f["chemical"])["labels"]["pre"] == text(store.neuron.values)
    check_provenance(ds, store.attrs, "celegans-connectome")
    rows = numpy_rows(ds)
    for i in range(len(ds)):
        r = rows[i]
        for v in ("chemical", "gap_junction", "covered_neurons", "asymmetric_gap_pairs", "dropped_non_neuronal_chemical",
                  "dropped_non_neuronal_gap"):
            same(r[v], store[v].values[i], f"annotation {i} {v}")
        for v in ("stage", "reference", "source_file", "weight_unit"):
            assert str(r[v]) == str(store[v].values[i])
        same(r["position"], store.position.values, "position")
        assert text(r["neuron"]) == text(store.neuron.values) == text(store.pre.values)
        assert text(r["neuron_class"]) == text(store.neuron_class.values)
    # CANL/CANR are NaN in every annotation that never lists them: the NaN positions survived
    assert np.isnan(rows[0]["chemical"]).sum() == np.isnan(store.chemical.values[0]).sum() > 0


@needs_wna
def test_celegans_funatlas_round_trip(tmp_path):
    get_loader("celegans-funatlas").prepare()
    store = open_dataset("celegans-funatlas").load()
    export("celegans-funatlas", tmp_path / "f")
    ds = datasets.load_from_disk(str(tmp_path / "f"))
    assert ds["strain"] == ["wt", "unc31"]
    assert [ds.features[v].dtype for v in ("dFF", "occ1", "q", "q_eq")] == ["float32", "int32", "float64", "float64"]
    rows = numpy_rows(ds)
    for i in range(2):
        for v in ("dFF", "occ1", "q", "q_eq"):
            same(rows[i][v], store[v].values[i], f"strain {i} {v}")
        assert text(rows[i]["neuron"]) == text(store.responding.values)


@needs_cect
@needs_wna
def test_structure_function_splits_never_hold_test_targets(tmp_path):
    from neuroharness.tasks import get_task

    task = get_task("celegans-structure-function")
    result = export("celegans-structure-function", tmp_path / "sf")
    dd = datasets.load_from_disk(str(tmp_path / "sf"))
    assert list(dd) == ["train", "validation", "test"]
    assert dd["train"].features == dd["validation"].features == dd["test"].features  # push_to_hub accepts them
    assert {k: v.dtype for k, v in dd["train"].features.items()} == {
        "responding": "string", "stimulated": "string", "significant": "bool", "amplitude": "float64"}
    for split, name in (("train", "train"), ("val", "validation")):
        want = task.labelled_table(split)
        got = dd[name].to_pandas()
        assert len(got) == len(want) == result.rows[""][name]
        assert list(got["responding"]) == list(want["responding"]) and list(got["stimulated"]) == list(want["stimulated"])
        same(got["significant"].to_numpy(), want["significant"].to_numpy(), f"{name} significant")
        same(got["amplitude"].to_numpy(), want["amplitude"].to_numpy(), f"{name} amplitude")
    template = task.submission_template("test")
    test = dd["test"].data
    assert test.column("responding").to_pylist() == list(template["responding"])
    assert test.column("stimulated").to_pylist() == list(template["stimulated"])
    assert test.column("significant").null_count == test.column("amplitude").null_count == len(template) > 0
    assert task.split_sha256(split="test") in dd["test"].info.description
    manifest = json.loads((tmp_path / "sf" / MANIFEST).read_text())
    assert manifest["kind"] == "task" and manifest["checksums"]["split_sha256/test"] == task.split_sha256(split="test")


def test_tasks_whose_targets_are_not_tables_are_refused(tmp_path, activity):
    with pytest.raises(UsageError, match=r"celegans-forecast cannot be exported as tables: .*activity traces.*"
                                         r"datasets export NAME --format hf DIR.*celegans-activity"):
        export("celegans-forecast", tmp_path / "fc")
    assert not (tmp_path / "fc").exists() and leftovers(tmp_path) == []


# -- VesselGraph --------------------------------------------------------------------------------------------
def test_vesselgraph_one_datasetdict_per_graph(vesselgraph, tmp_path):
    result = export("vesselgraph", tmp_path / "vg")
    assert sorted(result.rows) == ["synthetic_graph_1", "synthetic_graph_2"]
    assert leftovers(tmp_path / "vg") == [MANIFEST, "synthetic_graph_1", "synthetic_graph_2"]
    for graph in result.rows:
        g = vesselgraph[graph].to_dataset(inherit=False).load()
        dd = datasets.load_from_disk(str(tmp_path / "vg" / graph))
        assert list(dd) == ["nodes", "edges"]
        nodes, edges = numpy_rows(dd["nodes"])[:], numpy_rows(dd["edges"])[:]
        same(nodes["node"], np.arange(g.sizes["node"]), "node")
        same(edges["edge"], np.arange(g.sizes["edge"]), "edge")
        for v in g.data_vars:
            table = nodes if g[v].dims[0] == "node" else edges
            same(table[v], g[v].values, f"{graph} {v}")
        f = dd["nodes"].features
        assert typed(f["pos"], datasets.List(datasets.Value("float64"), length=3)) and meta(f["pos"])["units"] == "voxel"
        assert meta(f["pos"])["labels"]["axis"] == ["x", "y", "z"]
        assert meta(f["atlas_region"])["labels"]["region"] == text(g.region.values)
        assert meta(dd["edges"].features["edge_index"])["labels"]["endpoint"] == ["node1id", "node2id"]
        sha = json.loads(vesselgraph.attrs["parts_sha256"])[graph]
        assert f"part {graph} sha256: {sha}" in dd["edges"].info.description
    one = to_hf_dataset("vesselgraph", part="synthetic_graph_2")
    assert len(one["nodes"]) == vesselgraph["synthetic_graph_2"].sizes["node"]
    with pytest.raises(UsageError, match=r"holds 2 graphs \(synthetic_graph_1, synthetic_graph_2\); choose one with part="):
        to_hf_dataset("vesselgraph")
    with pytest.raises(UsageError, match=r"no graph 'BALBc_no1' in the prepared store; it holds synthetic_graph_1"):
        export("vesselgraph", tmp_path / "x", parts=["BALBc_no1"])
    export("vesselgraph", tmp_path / "vg2", parts=["synthetic_graph_2"])
    assert leftovers(tmp_path / "vg2") == [MANIFEST, "synthetic_graph_2"]


def test_vesselgraph_task_splits(vesselgraph, tmp_path):
    from neuroharness.tasks import get_task

    options = {"graph": "synthetic_graph_1"}
    task = get_task("vesselgraph-vessel-classification")
    export("vesselgraph-vessel-classification", tmp_path / "vc", options=options)
    dd = datasets.load_from_disk(str(tmp_path / "vc"))
    same(np.asarray(dd["train"]["label"]), task.labelled_table("train", options)["label"].to_numpy(), "train label")
    same(np.asarray(dd["validation"]["vessel"]), task.labelled_table("val", options)["vessel"].to_numpy(), "val ids")
    same(np.asarray(dd["test"]["vessel"]), task.submission_template("test", options)["vessel"].to_numpy(), "test ids")
    assert dd["test"].data.column("label").null_count == len(dd["test"])
    assert "option graph: synthetic_graph_1" in dd["test"].info.description
    with pytest.raises(UsageError, match="option"):
        export("vesselgraph-vessel-classification", tmp_path / "vc2", options={"grpah": "x"})
    assert not (tmp_path / "vc2").exists()


# -- EEG -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["nszed", "repod-schizophrenia"])
def test_eeg_one_row_per_recording(eeg, name, tmp_path):
    from neuroharness.loaders.eeg.recordings import LABELS, Recordings

    tree = eeg[name]
    rec = Recordings.from_tree(tree, name)
    result = export(name, tmp_path / name)
    assert any("not known" in n for n in result.notes)  # the licences are not verified: say so
    ds = datasets.load_from_disk(str(tmp_path / name))
    assert ds["recording"] == rec.recordings
    f = ds.features
    assert typed(f["eeg"], datasets.List(datasets.List(datasets.Value("float32"))))
    assert meta(f["eeg"])["units"] == "V" and meta(f["eeg"])["dims"] == ["channel", "time"]
    assert f["group"].names == ["control", "patient"]
    root = tree.to_dataset(inherit=False)
    rows = numpy_rows(ds)
    for i, r in enumerate(rec.recordings):
        row = rows[i]
        for col in rec.table.columns:
            want = root[col].values[i]
            if col == "group":
                assert int(row[col]) == LABELS[str(want)]
            elif np.asarray(want).dtype.kind in "USO":
                assert str(row[col]) == str(want)
            else:
                same(row[col], want, f"{r} {col}")
        same(row["eeg"], rec.eeg(r), f"{r} eeg")
        assert text(row["channel"]) == rec.channels(r)
        ann = rec.annotations(r)
        same(row["annotation_onset"], ann["onset"].to_numpy(), f"{r} onsets")
        assert text(row["annotation_description"]) == list(ann["description"])
        assert str(row["renamed"]) == rec.signal(r).attrs["renamed"]
    assert "layout_sha256" in ds.info.description


# -- NSD --------------------------------------------------------------------------------------------------
def test_nsd_subjects_and_the_redistribution_note(nsd, tmp_path, capsys):
    assert main(["datasets", "export", "nsd-algonauts2023", "--format", "hf", str(tmp_path / "nsd")]) == 0
    out = capsys.readouterr().out
    assert "may not be redistributed" in out and "your own local copy" in out and "do not push it" in out
    for subject in ("subj01", "subj02"):
        g = nsd[subject].to_dataset(inherit=False).load()
        dd = datasets.load_from_disk(str(tmp_path / "nsd" / subject))
        stim, vert = numpy_rows(dd["stimuli"])[:], numpy_rows(dd["vertices"])[:]
        for v in ("fmri", "images", "nsd_id", "split_row"):
            same(stim[v], g[v].values, f"{subject} {v}")
        for v in [v for v in g.data_vars if g[v].dims == ("vertex",)] + ["fsaverage_index"]:
            same(vert[v], g[v].values, f"{subject} {v}")
        assert [dd["stimuli"].features["split"].int2str(int(s)) for s in stim["split"]] == text(g.split.values)
        assert meta(dd["vertices"].features["roi_streams"])["flag_meanings"] == g.roi_streams.attrs["flag_meanings"]
        assert typed(dd["stimuli"].features["images"], datasets.Array3D((8, 8, 3), "uint8"))
        assert "may not be redistributed" in dd["stimuli"].info.description
    # subj01 has no test responses: NaN rows, exported as NaN
    assert np.isnan(numpy_rows(datasets.load_from_disk(str(tmp_path / "nsd" / "subj01"))["stimuli"])["fmri"][-1]).all()


# -- FISBe --------------------------------------------------------------------------------------------------
def _masks(row) -> np.ndarray:
    """(N, Z, Y, X) bool from an exported row: neuron k is labels[instance_label_image[i]] == k."""
    labels = np.asarray(row["labels"])
    return np.stack([labels[g] == k for k, g in zip(row["instance"], row["instance_label_image"])])


def test_fisbe_samples_by_split(fisbe, tmp_path):
    from neuroharness.tasks.fisbe.instance_segmentation import StoreData
    from neuroharness.loaders.fisbe import sample_index

    export("fisbe", tmp_path / "fisbe")
    dd = datasets.load_from_disk(str(tmp_path / "fisbe"))
    assert list(dd) == ["train", "validation", "test"] and [len(dd[s]) for s in dd] == [2, 2, 2]
    f = dd["train"].features
    assert typed(f["raw"], datasets.Array4D((3, 16, 32, 32), "uint16"))
    assert typed(f["labels"], datasets.Array4D((None, 16, 32, 32), "uint8"))
    tree = open_dataset("fisbe")
    data = StoreData(str(get_loader("fisbe").store_path()), sample_index(tree))
    for split in dd:
        rows = numpy_rows(dd[split])
        for i in range(len(rows)):
            r = rows[i]
            name = str(r["sample"])
            want = fisbe["samples"][name]
            assert {"train": "train", "validation": "val", "test": "test"}[split] == want["split"]
            assert f["subset"].int2str(int(r["subset"])) == want["subset"]
            same(r["raw"], data.raw(name), f"{name} raw")
            masks = _masks(r)
            same(masks, np.asarray(data.gt(name)), f"{name} instance masks")
            same(r["n_voxels"], masks.reshape(len(masks), -1).sum(1), f"{name} n_voxels")
            # and the release's own GT channels: channel k holds k + 1
            import zarr

            gt = zarr.open_group(str(want["path"]), mode="r")["volumes/gt_instances"][...]
            same(masks, gt != 0, f"{name} release GT")


def test_fisbe_samples_of_different_sizes_are_nested_lists(tmp_path, monkeypatch):
    """The real release's volumes differ in size: raw and labels become ragged lists, values unchanged."""
    gen = load_script("make_fisbe_fixture")
    monkeypatch.setenv("NEUROHARNESS_HOME", str(tmp_path / "home"))
    rel = gen.write_release(tmp_path / "rel", n_per_split=1, shape=(12, 20, 24), n_neurons=2, seed=5)
    odd = next(n for n, s in rel["samples"].items() if s["split"] == "val" and s["subset"] == "completely")
    raw, gt = gen.synthetic_sample((10, 26, 18), 1, 7)  # one neuron: no overlapping pair (an empty list)
    gen.write_sample(rel["samples"][odd]["path"], raw, gt)
    get_loader("fisbe").prepare(tmp_path / "rel")
    export("fisbe", tmp_path / "out")
    dd = datasets.load_from_disk(str(tmp_path / "out"))
    assert typed(dd["train"].features["raw"], datasets.List(datasets.List(datasets.List(datasets.List(
        datasets.Value("uint16"))))))
    rows = numpy_rows(dd["validation"])
    r = next(rows[i] for i in range(len(rows)) if str(rows[i]["sample"]) == odd)
    same(r["raw"], raw, "raw of the odd-sized sample")
    same(_masks(r), gt != 0, "masks of the odd-sized sample")
    assert np.asarray(r["overlap_pairs"]).size == 0 and int(r["overlap_voxels"]) == 0


# -- the command line and bad requests ------------------------------------------------------------------------
def test_cli_export_prints_where_and_how_to_load(activity, tmp_path, capsys):
    assert main(["-q", "datasets", "export", "celegans-activity", "--format", "hf", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == str(tmp_path / "a") and out[1].strip() == "rows 14"
    assert f"load: datasets.load_from_disk({str(tmp_path / 'a')!r})" in [line.strip() for line in out]
    assert len(datasets.load_from_disk(str(tmp_path / "a"))) == 14


def test_unknown_format_and_name(activity, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["datasets", "export", "celegans-activity", "--format", "csv", str(tmp_path / "x")])
    assert e.value.code == 2 and "invalid choice: 'csv'" in capsys.readouterr().err
    with pytest.raises(UsageError, match=r"--format 'parquet': unknown export format; expected one of hf"):
        export("celegans-activity", tmp_path / "x", format="parquet")
    assert main(["datasets", "export", "celegans-activty", "--format", "hf", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "unknown dataset or task 'celegans-activty'" in err and "celegans-activity" in err and "celegans-forecast" in err
    with pytest.raises(UsageError, match="--option applies to tasks; dataset celegans-activity has no options"):
        export("celegans-activity", tmp_path / "x", options={"graph": "g"})
    with pytest.raises(UsageError, match="--part applies to datasets exported one part at a time"):
        export("celegans-activity", tmp_path / "x", parts=["w"])
    assert leftovers(tmp_path) == []


def test_unprepared_dataset_is_an_error_and_is_not_prepared(tmp_path, monkeypatch, capsys):
    home = tmp_path / "empty_home"
    monkeypatch.setenv("NEUROHARNESS_HOME", str(home))
    with pytest.raises(NeuroharnessError, match=r"dataset vesselgraph: not prepared \(vesselgraph\); export reads "
                                                r"prepared stores only: run `neuroharness datasets prepare vesselgraph`"):
        export("vesselgraph", tmp_path / "out")
    assert main(["datasets", "export", "celegans-structure-function", "--format", "hf", str(tmp_path / "out")]) == 2
    assert "task celegans-structure-function reads celegans-funatlas, celegans-connectome: not prepared" in \
        capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not (home / "datasets").exists()  # nothing written, nothing prepared


def test_bad_target_folders(activity, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match=r"DIR .*file: is a file; expected a folder"):
        export("celegans-activity", tmp_path / "file")
    with pytest.raises(UsageError, match=r"DIR .*file/sub: .*file is a file, not a folder"):
        export("celegans-activity", tmp_path / "file" / "sub")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("keep")
    with pytest.raises(UsageError, match=r"DIR .*full: exists and is not empty; choose a new folder, or pass --force"):
        export("celegans-activity", tmp_path / "full")
    with pytest.raises(UsageError, match=r"holds no neuroharness_export.json, so it is not an earlier export"):
        export("celegans-activity", tmp_path / "full", force=True)
    assert (tmp_path / "full" / "mine.txt").read_text() == "keep"
    assert leftovers(tmp_path) == ["file", "full"]
    if os.geteuid() != 0:  # root writes anywhere
        (tmp_path / "ro").mkdir(mode=0o500)
        with pytest.raises(UsageError, match="cannot be written"):
            export("celegans-activity", tmp_path / "ro" / "out")
    # an empty folder is fine, and --force replaces an earlier export whole
    (tmp_path / "empty").mkdir()
    export("celegans-activity", tmp_path / "empty")
    (tmp_path / "empty" / "stale.arrow").write_text("x")
    export("celegans-activity", tmp_path / "empty", force=True)
    assert "stale.arrow" not in leftovers(tmp_path / "empty")


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_failure_while_writing_leaves_nothing(activity, tmp_path, monkeypatch, error):
    target = tmp_path / "new" / "deeper" / "out"

    def broken(self, path, *args, **kwargs):
        Path(path).mkdir(parents=True, exist_ok=True)
        (Path(path) / "data-00000-of-00001.arrow").write_bytes(b"half")
        raise error

    monkeypatch.setattr(datasets.Dataset, "save_to_disk", broken)
    with pytest.raises(type(error)):
        export("celegans-activity", target)
    assert leftovers(tmp_path) == []  # no target, no temporary sibling, no folder made for it


def test_exporter_errors_name_the_store(activity):
    """A store whose ragged index points outside its samples is a DataFormatError naming it, before any row."""
    from neuroharness.loaders.hf_export import celegans

    bad = open_dataset("celegans-activity").assign(worm_start=lambda d: d.worm_start + 10 ** 9)
    with pytest.raises(DataFormatError, match=r"celegans-activity store: worm_start/row_size point outside the "
                                              r"\d+ samples; rebuild the store"):
        celegans.activity(get_loader("celegans-activity").card, bad)


def test_to_hf_dataset_writes_once_per_store_content(activity, tmp_path):
    first = to_hf_dataset("celegans-activity", cache_dir=tmp_path / "c")
    again = to_hf_dataset("celegans-activity", cache_dir=tmp_path / "c")
    assert first.cache_files == again.cache_files and len(list((tmp_path / "c" / "celegans-activity").iterdir())) == 1
    assert first.features == again.features and len(first) == 14


def test_exporters_cover_every_dataset_and_the_package_imports_light():
    from neuroharness.loaders import list_datasets

    assert set(EXPORTERS) == set(list_datasets())
    code = ("import sys, neuroharness.loaders.hf_export as h; "
            "print(sorted(m for m in ('datasets', 'numpy', 'xarray', 'pyarrow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- pushed to a Hub and loaded back with load_dataset ---------------------------------------------------------
PUSH = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import numpy as np, datasets, huggingface_hub

    # tests/hub_server.py takes regular files only: hand the parquet bytes to the commit instead of an LFS upload
    _pre = huggingface_hub.HfApi.preupload_lfs_files
    def pre(self, repo_id, additions, **kw):
        for a in additions:
            if isinstance(a.path_or_fileobj, (str, Path)):
                a.path_or_fileobj = Path(a.path_or_fileobj).read_bytes()
        return _pre(self, repo_id, additions=additions, **kw)
    huggingface_hub.HfApi.preupload_lfs_files = pre
    datasets.disable_progress_bars()

    def same(x, y):
        if isinstance(x, list) or isinstance(y, list):  # rows of different shapes
            return isinstance(x, list) and isinstance(y, list) and len(x) == len(y) and all(map(same, x, y))
        x, y = np.asarray(x), np.asarray(y)
        if x.dtype == object or y.dtype == object:
            return x.shape == y.shape and all(same(u, v) for u, v in zip(x.ravel(), y.ravel()))
        return x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()

    def equal(ds, back, column):  # whole columns at once; ragged ones come as lists, compared row by row
        return same(ds.with_format("numpy", dtype=None)[:][column], back.with_format("numpy", dtype=None)[:][column])

    out = {}
    for path, repo, table, split, rows in json.loads(sys.argv[1]):
        ds = datasets.load_from_disk(path)
        if rows:  # a few rows are enough to carry every column type through parquet; fewer bytes over HTTP
            ds = ds.select(range(rows))
        if table:
            ds[table].push_to_hub(repo, config_name=table, split=split, token="t")
            ds, back = ds[table], datasets.load_dataset(repo, table, split=split, token="t", cache_dir=sys.argv[2])
        else:
            ds.push_to_hub(repo, token="t")
            back = datasets.load_dataset(repo, split="train", token="t", cache_dir=sys.argv[2])
        same_values = all(equal(ds, back, k) for k in ds.features)
        out[repo] = {"features_equal": back.features == ds.features, "rows": len(back), "values_equal": same_values}
    print(json.dumps(out))
""")


def test_pushed_to_the_hub_and_loaded_with_load_dataset(activity, eeg, vesselgraph, tmp_path):
    hub_server = pytest.importorskip("hub_server", reason="needs tests/hub_server.py (the local Hub)")
    export("celegans-activity", tmp_path / "act")
    export("repod-schizophrenia", tmp_path / "repod")
    export("vesselgraph", tmp_path / "vg", parts=["synthetic_graph_1"])
    server = hub_server.HubServer()
    try:
        env = {**os.environ, "HF_ENDPOINT": server.base, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "0",
               "HF_DATASETS_OFFLINE": "0", "HF_HUB_DISABLE_TELEMETRY": "1"}
        jobs = [(str(tmp_path / "act"), "me/activity", None, None, 3), (str(tmp_path / "repod"), "me/repod", None, None, 0),
                (str(tmp_path / "vg" / "synthetic_graph_1"), "me/vg", "edges", "synthetic_graph_1", 0)]
        proc = subprocess.run([sys.executable, "-c", PUSH, json.dumps(jobs), str(tmp_path / "cache")], env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        got = json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        server.close()
    assert got == {"me/activity": {"features_equal": True, "rows": 3, "values_equal": True},
                   "me/repod": {"features_equal": True, "rows": len(eeg["repod-schizophrenia"].children),
                                "values_equal": True},
                   "me/vg": {"features_equal": True, "rows": vesselgraph["synthetic_graph_1"].sizes["edge"],
                             "values_equal": True}}
