"""celegans-activity: raw parquet layout -> ragged store, bad input, HuggingFace download."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from neuroharness.errors import DataFormatError
from neuroharness.loaders import get_loader, open_dataset, prepare
from neuroharness.loaders.celegans import activity, activity_parquet, neuron_names
from helpers import load_script


def _fixture_module():
    return load_script("make_celegans_activity_fixture")


FX = _fixture_module()


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    out = tmp_path_factory.mktemp("activity_raw")
    (path,) = FX.write_activity_fixture(out, n_worms=14, seed=3, wide=True, max_len=1500)
    return path


@pytest.fixture(scope="module")
def table(raw):
    return pq.read_table(raw).to_pandas()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROHARNESS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_fixture_has_the_published_layout(raw, table):
    assert raw.name == activity_parquet.HF_FILES[0]
    assert tuple(table.columns) == activity_parquet.WIDE_COLUMNS  # the live 25-column file
    assert table.source_dataset.nunique() == 12
    assert not table.is_labeled_neuron.all()  # unlabeled rows with numeric names
    assert table.loc[~table.is_labeled_neuron, "neuron"].str.isdigit().all()


def test_prepare_builds_the_ragged_store(raw, table, home):
    prepare("celegans-activity", source=raw.parent)
    ds = open_dataset("celegans-activity")
    worms = table.groupby(["source_dataset", "worm"], sort=False)
    assert ds.sizes["worm"] == worms.ngroups and ds.sizes["neuron"] == 302
    lengths = worms.max_timesteps.first().to_numpy()
    np.testing.assert_array_equal(ds.row_size.values, lengths)
    assert ds.sizes["sample"] == lengths.sum()
    np.testing.assert_array_equal(ds.worm_start.values, np.concatenate([[0], np.cumsum(lengths)[:-1]]))
    labeled = worms.is_labeled_neuron.sum().to_numpy()
    np.testing.assert_array_equal(ds.labeled.sum("neuron").values, labeled)
    assert ds.row_size.attrs["sample_dimension"] == "sample"
    assert set(np.char.partition(ds.worm.values.astype(str), "/")[:, 0]) == set(table.source_dataset)
    # one worm, one neuron: the stored trace is the published one
    row = table[table.is_labeled_neuron].iloc[5]
    w = list(ds.worm.values).index(f"{row.source_dataset}/{row.worm}")
    s, T = int(ds.worm_start[w]), int(ds.row_size[w])
    np.testing.assert_array_equal(ds.calcium.sel(neuron=row.neuron).values[s : s + T], np.asarray(row.calcium_data, dtype=np.float32))
    np.testing.assert_array_equal(ds.calcium_smooth.sel(neuron=row.neuron).values[s : s + T], np.asarray(row.smooth_calcium_data, dtype=np.float32))
    np.testing.assert_allclose(ds.time.values[s : s + 3], [0, 0.333, 0.666], atol=1e-5)
    # unlabeled neurons of that worm are NaN, labeled ones finite
    block = ds.calcium.values[s : s + T]
    assert np.isfinite(block[:, ds.labeled.values[w]]).all() and np.isnan(block[:, ~ds.labeled.values[w]]).all()
    assert (ds.worm_index.values[s : s + T] == w).all()
    assert ds.dt.values[w] == pytest.approx(0.333, abs=1e-4)
    for v in ("calcium", "calcium_smooth", "time", "labeled", "row_size"):
        assert {"units", "long_name"} <= set(ds[v].attrs)
    assert ds.calcium.encoding["chunks"] == (activity.SAMPLE_CHUNK, 302)


def test_info_summary(raw, home):
    prepare("celegans-activity", source=raw.parent)
    loader = get_loader("celegans-activity")
    lines = loader.summary(loader.open())
    assert lines[-1].startswith("total") and "Lin2023" in "\n".join(lines)
    ds = loader.open()
    hours = float((ds.row_size * ds.dt).sum()) / 3600
    assert lines[-1].split()[-1] == f"{hours:.2f}"


def _rewrite(raw: Path, out: Path, edit) -> Path:
    t = pq.read_table(raw).to_pandas()
    t = edit(t)
    out.mkdir(parents=True, exist_ok=True)
    path = out / raw.name
    pq.write_table(pa.Table.from_pandas(t, preserve_index=False), path)
    return path


def _first_labeled(t):
    return t.index[t.is_labeled_neuron][0]


@pytest.mark.parametrize("case,match", [
    ("missing_column", r"missing column\(s\) \['calcium_data'\]"),
    ("short_trace", r"worm \w+/worm0, neuron \w+, field calcium_data: length 10, expected max_timesteps"),
    ("unknown_neuron", r"worm \w+/worm0, neuron 'XYZL', field neuron: not one of the 302"),
    ("nan_value", r"worm \w+/worm0, neuron \w+, field calcium_data: 1 non-finite value"),
    ("nan_smooth", r"field smooth_calcium_data: 1 non-finite value"),
    ("duplicate", r"labeled twice"),
    ("not_contiguous", r"not contiguous"),
])
def test_bad_input_names_worm_neuron_field_and_writes_nothing(raw, tmp_path, home, case, match):
    def edit(t):
        i = _first_labeled(t)
        if case == "missing_column":
            return t.drop(columns=["calcium_data"])
        if case == "short_trace":
            t.at[i, "calcium_data"] = t.at[i, "calcium_data"][:10]
        elif case in ("nan_value", "nan_smooth"):
            col = "calcium_data" if case == "nan_value" else "smooth_calcium_data"
            a = np.array(t.at[i, col], dtype=np.float32)
            a[7] = np.nan
            t.at[i, col] = a
        elif case == "unknown_neuron":
            t.at[i, "neuron"] = "XYZL"
        elif case == "duplicate":
            j = t.index[t.is_labeled_neuron][1]
            t.at[j, "neuron"] = t.at[i, "neuron"]
        elif case == "not_contiguous":
            first = t[(t.worm == "worm0") & (t.source_dataset == t.source_dataset.iloc[0])]
            t = __import__("pandas").concat([t.drop(first.index[:1]), first.iloc[:1]])
        return t

    path = _rewrite(raw, tmp_path / case, edit)
    with pytest.raises(DataFormatError, match=match) as e:
        prepare("celegans-activity", source=path.parent, force=True)
    assert str(path) in str(e.value)
    store = get_loader("celegans-activity").store_path()
    assert not store.exists() and not list(store.parent.glob(".*tmp-*"))


def _serve_hf(server, data: bytes, commit: str, etag: str) -> None:
    """Answer the hub's resolve URLs, by branch and by commit, as huggingface.co does."""
    for rev in ("main", commit):
        server.add(f"/datasets/{activity_parquet.HF_REPO}/resolve/{rev}/{activity_parquet.HF_FILES[0]}", data,
                   headers={"ETag": f'"{etag}"', "X-Repo-Commit": commit})


def test_download_through_huggingface_hub(raw, http_server, home, monkeypatch):
    """The real download path, against a local server speaking the hub's resolve protocol."""
    data = raw.read_bytes()
    commit = hashlib.sha1(b"fixture").hexdigest()
    _serve_hf(http_server, data, commit, hashlib.sha256(data).hexdigest())
    monkeypatch.setenv("HF_ENDPOINT", http_server.base)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    files, origin = activity.download_hf()
    assert origin == f"huggingface datasets/{activity_parquet.HF_REPO}@{commit}"
    assert Path(files[activity_parquet.HF_FILES[0]]).read_bytes() == data
    path = prepare("celegans-activity")
    assert open_dataset("celegans-activity").attrs["source"] == origin and path.exists()


def test_iter_worms_yields_canonical_order(raw):
    names = neuron_names()
    recs = list(activity_parquet.iter_worms([raw], names))
    assert all(list(r.neurons) == sorted(r.neurons, key=names.index) for r in recs)
    assert all(8 <= len(r.neurons) <= 190 and 600 <= len(r.time) <= 1500 for r in recs)


def test_download_rejects_a_file_that_does_not_match_the_hub_sha256(raw, http_server, home, monkeypatch):
    from neuroharness.errors import ChecksumError

    data = raw.read_bytes()
    commit = hashlib.sha1(b"other").hexdigest()
    _serve_hf(http_server, data, commit, "0" * 64)
    monkeypatch.setenv("HF_ENDPOINT", http_server.base)
    with pytest.raises(ChecksumError, match="ETag"):
        prepare("celegans-activity")
    assert not get_loader("celegans-activity").store_path().exists()

