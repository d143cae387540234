"""The loaders' shared machinery: dataset cards and the lazy registry, Dataset vs DataTree loaders,
content and per-part checksums (pinned), and the I/O helpers of ``loaders/io.py``."""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr
from helpers import load_script
from test_vesselgraph_loader import FILE_ID, write_toy

import neuroharness.loaders as L
from neuroharness.errors import DataFormatError, NeuroharnessError, UnknownNameError
from neuroharness.loaders import base, io
from neuroharness.loaders.base import DatasetLoader, TreeLoader, content_checksum, tree_checksum, tree_checksums
from neuroharness.loaders.card import DatasetCard, DatasetCardError

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("numpy", "pandas", "xarray", "zarr", "torch", "numba")
# content_sha256 values computed with the code before the loader refactor (base.tree_checksum of
# the stores below); result records and official leaderboards depend on them staying the same
VESSELGRAPH_TOY_SHA256 = "840f08072e5c587d0238e77ed2c0266061c3ddfad9dda609ca979bd4e0703d6c"
FISBE_FIXTURE_SHA256 = "01dd4678727b512e61af0af2563fdc37da9b7f207812ec4f068ce0141ae9a84c"
SMALL_DATASET_SHA256 = "e5c87551b7a26ce1d2b0669cf08682bc8c10c9bda692c7d31c2757145be54b02"


@pytest.fixture
def home(tmp_path, monkeypatch):
    root = tmp_path / "home"
    monkeypatch.setenv("NEUROHARNESS_HOME", str(root))
    monkeypatch.delenv("NEUROHARNESS_VESSELGRAPH_TABLE", raising=False)
    monkeypatch.delenv("NEUROHARNESS_VESSELGRAPH_MIRROR", raising=False)
    return root


def card(**kw) -> DatasetCard:
    fields = dict(name="test-x", version="1.0", title="t", description="d", license="CC0", citation="c",
                  loader="tests:X", offline="pass --source")
    return DatasetCard(**{**fields, **kw})


# -- cards and the registry ------------------------------------------------------------------------
@pytest.mark.parametrize("flags", [[], ["-OO"]])
def test_listing_and_cards_import_nothing_heavy(flags, tmp_path):
    code = (
        "import json, sys\n"
        "import neuroharness.loaders as L\n"
        "from neuroharness.loaders import cache\n"
        "names = L.list_datasets()\n"
        "cards = {n: L.get_card(n).to_dict() for n in names}\n"
        "cache.store_path(names[0], cards[names[0]]['version'])\n"
        f"print(json.dumps({{'names': names, 'broken': L.DATASETS.broken, 'heavy': [m for m in {HEAVY!r} if m in sys.modules],"
        " 'citation': cards['celegans-connectome']['citation']}))\n"
    )
    env = {**os.environ, "NEUROHARNESS_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, *flags, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, check=True)
    got = json.loads(out.stdout)
    assert got["names"] == ["celegans-activity", "celegans-connectome", "celegans-funatlas", "fisbe", "nsd-algonauts2023",
                            "nszed", "repod-schizophrenia", "vesselgraph"]
    assert got["broken"] == {} and got["heavy"] == []
    assert got["citation"].startswith("White et al. 1986")  # literal text, not a slice of a docstring (-OO)


def test_card_validation_and_to_dict():
    c = card(description="two\n    lines")
    assert c.to_dict() == {"name": "test-x", "version": "1.0", "title": "t", "description": "two lines", "license": "CC0",
                           "citation": "c", "homepage": "", "parts": "", "loader": "tests:X",
                           "offline": "pass --source", "redistribution": "unknown"}
    with pytest.raises(DatasetCardError, match=r"dataset card 'test-x': field 'citation' is '  ', expected a non-empty string"):
        card(citation="  ")
    with pytest.raises(DatasetCardError, match=r"field 'loader' is 'tests.X', expected an import string 'package.module:Class'"):
        card(loader="tests.X")
    with pytest.raises(DatasetCardError, match=r"field 'name' is 'Bad Name', expected lower-case"):
        card(name="Bad Name")
    with pytest.raises(TypeError):
        DatasetCard("n", "1", "t", "d", "l", "c")  # loader is required (keyword)
    with pytest.raises(TypeError):  # so is the text download errors end with
        DatasetCard("n", "1", "t", "d", "l", "c", loader="tests:X")
    with pytest.raises(DatasetCardError, match=r"field 'offline' is ''"):
        card(offline="")


def test_card_redistribution_field():
    # a card that does not say is never published; the others say why, naming the licence
    assert (card().redistribution_status, card().redistribution_reason) == ("unknown", "")
    c = card(redistribution="allowed: CC0 waives every right")
    assert (c.redistribution_status, c.redistribution_reason) == ("allowed", "CC0 waives every right")
    assert card(redistribution="forbidden: the terms say so").redistribution_status == "forbidden"
    for bad in ("forbidden", "allowed:", "unknown:  ", "maybe: who knows", "Allowed: CC0", 1):
        with pytest.raises(DatasetCardError, match=r"dataset card 'test-x': field 'redistribution' is .*, expected "
                                                   r"'allowed: <why>', 'forbidden: <why>' or 'unknown: <why>'"):
            card(redistribution=bad)
    # every registered card decides, from its licence
    status = {n: L.get_card(n).redistribution_status for n in L.list_datasets()}
    assert status == {"celegans-activity": "allowed", "celegans-connectome": "allowed", "celegans-funatlas": "allowed",
                      "fisbe": "allowed", "nsd-algonauts2023": "forbidden", "nszed": "unknown",
                      "repod-schizophrenia": "unknown", "vesselgraph": "allowed"}
    assert "NSD Terms and Conditions" in L.get_card("nsd-algonauts2023").redistribution_reason
    assert all("not yet verified" in L.get_card(n).redistribution_reason for n in ("nszed", "repod-schizophrenia"))


def test_each_loader_reads_its_facts_from_its_card():
    for name in L.list_datasets():
        c = L.get_card(name)
        loader = L.get_loader(name)
        assert loader is L.get_loader(name)  # one instance per name
        assert type(loader).card is c
        assert f"{type(loader).__module__}:{type(loader).__qualname__}" == c.loader
        for key in ("name", "version", "title", "description", "license", "citation", "homepage", "parts"):
            assert getattr(loader, key) == getattr(c, key), (name, key)
            assert key not in vars(type(loader)), f"{name}: {key} is set on the class, not only on the card"
        assert list(inspect.signature(loader.fetch).parameters) == ["source", "only"]
        assert isinstance(loader, TreeLoader) == (name in ("fisbe", "nsd-algonauts2023", "nszed", "repod-schizophrenia",
                                                                 "vesselgraph"))
    assert L.get_card("vesselgraph").parts == "graph" and L.get_card("fisbe").parts == ""
    with pytest.raises(UnknownNameError, match="unknown dataset 'nope'; valid datasets: celegans-activity"):
        L.get_card("nope")


def test_connectome_citation_literal_matches_its_annotations():
    from neuroharness.loaders.celegans import connectome

    computed = "; ".join(dict.fromkeys(a.reference for a in connectome.ANNOTATIONS)) + \
        "; Gleeson et al., cect (OpenWorm ConnectomeToolbox)"
    assert L.get_card("celegans-connectome").citation == computed


def test_family_packages_keep_their_public_names():
    from neuroharness.loaders import fisbe, vesselgraph

    assert callable(fisbe.open_fisbe) and callable(fisbe.sample_index) and fisbe.VOXEL_SIZE_UM == 0.44
    for name in ("open_graph", "graph_index", "to_pyg", "content_sha256", "part_sha256", "graph_table"):
        assert callable(getattr(vesselgraph, name)), name
    assert vesselgraph.DEFAULT_GRAPH == "BALBc_no1"
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        vesselgraph.nope  # noqa: B018


# -- Dataset vs DataTree loaders ---------------------------------------------------------------------
class FlatLoader(DatasetLoader):
    card = card(name="test-flat", loader="test_loaders_core:FlatLoader")

    def fetch(self, source, only=None):
        return {"raw": Path(source)}, f"local {source}"

    def build(self, files):
        return small_dataset()


class PartsLoader(TreeLoader):
    card = card(name="test-parts", loader="test_loaders_core:PartsLoader")

    def fetch(self, source, only=None):
        return {"raw": Path(source)}, f"local {source}"

    def write(self, files, target):
        tree = xr.DataTree.from_dict({
            "/": xr.Dataset(coords={"part": ["a", "b"]}),
            "/a": small_dataset(),
            "/b": xr.Dataset({"v": ("n", np.array([1, 2], dtype=np.int16), {"units": "1", "long_name": "v"})}),
            "/b/deep": xr.Dataset({"w": ("m", np.ones(3), {"units": "s", "long_name": "w"})}),
        })
        tree.to_zarr(target, mode="w", consolidated=False, zarr_format=2)


def small_dataset() -> xr.Dataset:
    return xr.Dataset({"a": (("x", "y"), np.arange(12, dtype=np.float32).reshape(3, 4), {"units": "1", "long_name": "a"}),
                       "b": ("x", np.array([True, False, True]), {"units": "1", "long_name": "b"}),
                       "s": ((), np.int64(7), {"units": "1", "long_name": "s"})},
                      coords={"x": ["p", "q", "r"], "y": np.arange(4)})


def test_content_checksum_is_pinned_and_progress_counts_every_byte():
    class Bar:
        n = 0

        def update(self, k):
            self.n += k

    ds = small_dataset()
    bar = Bar()
    assert content_checksum(ds, progress=bar) == SMALL_DATASET_SHA256
    assert content_checksum(ds, block_bytes=1) == SMALL_DATASET_SHA256
    assert bar.n == base._nbytes([ds]) > 0


def test_flat_loader_opens_a_dataset_and_tree_loader_a_datatree(home, tmp_path):
    raw = tmp_path / "raw.txt"
    raw.write_text("x")
    flat, parts = FlatLoader(), PartsLoader()
    ds = flat.open(source=raw)
    assert isinstance(ds, xr.Dataset) and not isinstance(ds, xr.DataTree)
    assert flat.content_sha256() == ds.attrs["content_sha256"] == SMALL_DATASET_SHA256
    assert "parts_sha256" not in ds.attrs
    tree = parts.open(source=raw)
    assert isinstance(tree, xr.DataTree) and set(tree.children) == {"a", "b"}
    assert parts.content_sha256() == tree.attrs["content_sha256"]
    # parts: top-level groups, each the content_checksum of its own variables ("a": no subgroup), then
    # each deeper group's relative path and variables ("b" holds "b/deep")
    hb = hashlib.sha256()
    base._update_checksum((hb,), tree["b"].to_dataset(inherit=False), base.BLOCK_BYTES)
    hb.update(b"group|deep|")
    base._update_checksum((hb,), tree["b/deep"].to_dataset(inherit=False), base.BLOCK_BYTES)
    expected = {"a": SMALL_DATASET_SHA256, "b": hb.hexdigest()}
    assert expected["b"] != content_checksum(tree["b"].to_dataset(inherit=False))
    assert json.loads(tree.attrs["parts_sha256"]) == expected == parts.part_checksums()
    with xr.open_datatree(parts.store_path(), engine="zarr", consolidated=True, chunks=None) as t:
        assert tree_checksum(t) == tree.attrs["content_sha256"]


def test_tree_loader_checks_every_group(home, tmp_path):
    class Unitless(PartsLoader):
        def write(self, files, target):
            xr.DataTree.from_dict({"/a": small_dataset(), "/a/deep": xr.Dataset({"w": ("m", np.ones(2))})}).to_zarr(
                target, mode="w", consolidated=False, zarr_format=2)

    with pytest.raises(DataFormatError, match=r"test-parts group '/a/deep': data variable 'w' lacks attribute\(s\) \['units', 'long_name'\]"):
        Unitless().prepare(tmp_path)
    assert not (home / "datasets" / "test-parts").exists() or list((home / "datasets" / "test-parts").iterdir()) == []


# -- per-part checksums of the real loaders ---------------------------------------------------------
def _drop_parts_attr(path: Path) -> None:
    """Make ``path`` look like a store prepared before ``parts_sha256`` existed."""
    meta = json.loads((path / ".zmetadata").read_text())
    del meta["metadata"][".zattrs"]["parts_sha256"]
    (path / ".zmetadata").write_text(json.dumps(meta))
    attrs = json.loads((path / ".zattrs").read_text())
    del attrs["parts_sha256"]
    (path / ".zattrs").write_text(json.dumps(attrs))


def test_vesselgraph_checksums_pinned_parts_and_old_stores(home, tmp_path):
    from neuroharness.loaders import vesselgraph

    src = tmp_path / "rel"
    write_toy(src / "synthetic_graph_1" / FILE_ID)
    write_toy(src / "BALBc_no1" / "prefix", file_id="prefix", atlas=None)
    loader = L.get_loader("vesselgraph")
    path = loader.prepare(src)
    attrs = zarr.open_group(str(path), mode="r").attrs
    assert attrs["content_sha256"] == VESSELGRAPH_TOY_SHA256  # unchanged by the refactor
    tree = xr.open_datatree(path, engine="zarr", consolidated=True, chunks=None)
    per_group = {g: content_checksum(tree[g].to_dataset(inherit=False)) for g in ("BALBc_no1", "synthetic_graph_1")}
    assert json.loads(attrs["parts_sha256"]) == per_group == loader.part_checksums()
    assert per_group["BALBc_no1"] != per_group["synthetic_graph_1"]
    assert tree_checksums(tree) == (VESSELGRAPH_TOY_SHA256, per_group)
    assert vesselgraph.part_sha256("synthetic_graph_1") == per_group["synthetic_graph_1"]
    assert vesselgraph.content_sha256() == VESSELGRAPH_TOY_SHA256
    with pytest.raises(NeuroharnessError, match=r"graph 'synthetic_graph_2' is not in the prepared vesselgraph store"):
        vesselgraph.part_sha256("synthetic_graph_2")

    # a store prepared before parts_sha256: computed from the data, the store is not rewritten
    _drop_parts_attr(path)
    before = {p: p.read_bytes() for p in (path / ".zmetadata", path / ".zattrs")}
    assert loader.part_checksums() == per_group
    assert vesselgraph.part_sha256("BALBc_no1") == per_group["BALBc_no1"]
    assert {p: p.read_bytes() for p in before} == before


def test_vesselgraph_part_sha256_prepares_only_that_graph(home, monkeypatch, tmp_path):
    from neuroharness.loaders import vesselgraph

    loader = L.get_loader("vesselgraph")
    seen = []
    real = type(loader).prepare

    def prepare(self, source=None, force=False, only=None):
        seen.append(only)
        return real(self, tmp_path / "src", force, only)

    write_toy(tmp_path / "src" / "synthetic_graph_1" / FILE_ID)
    monkeypatch.setattr(type(loader), "prepare", prepare)
    digest = vesselgraph.part_sha256("synthetic_graph_1")
    assert seen == [["synthetic_graph_1"]]
    assert digest == json.loads(loader.root_attrs()["parts_sha256"])["synthetic_graph_1"]


def test_fisbe_checksum_pinned_and_parts_are_samples(home, tmp_path):
    gen = load_script("make_fisbe_fixture")
    rel = gen.write_release(tmp_path / "release", 1, (32, 64, 64), 3, seed=0)
    loader = L.get_loader("fisbe")
    path = loader.prepare(rel["root"])
    attrs = zarr.open_group(str(path), mode="r").attrs
    assert attrs["content_sha256"] == FISBE_FIXTURE_SHA256
    parts = loader.part_checksums()
    assert sorted(parts) == sorted(rel["samples"])
    name = sorted(parts)[0]
    with xr.open_datatree(path, engine="zarr", consolidated=True, chunks=None) as tree:
        assert parts == base.part_digests(tree)
        assert parts[name] != content_checksum(tree[name].to_dataset(inherit=False))  # its labels/ count too
    _drop_parts_attr(path)
    assert loader.part_checksums() == parts


def test_part_digest_covers_nested_groups(home, tmp_path):
    """One label voxel changed in a sample's ``labels/...`` subgroup changes that sample's digest, no other."""
    import shutil

    gen = load_script("make_fisbe_fixture")
    rel = gen.write_release(tmp_path / "release", 1, (16, 32, 32), 2, seed=1)
    path = L.get_loader("fisbe").prepare(rel["root"])
    copy = tmp_path / "copy.zarr"
    shutil.copytree(path, copy)
    name = sorted(rel["samples"])[1]
    labels = zarr.open_group(str(copy / name / "labels"), mode="r+")
    image = labels[sorted(labels.group_keys())[0]]["0"]
    image[0, 0, 0] = int(image[0, 0, 0]) ^ 1

    def digests(p):
        with xr.open_datatree(p, engine="zarr", consolidated=False, chunks=None) as tree:
            return tree_checksums(tree)

    (before, parts), (after, changed) = digests(path), digests(copy)
    assert parts == json.loads(zarr.open_group(str(path), mode="r").attrs["parts_sha256"])
    assert before != after and changed[name] != parts[name]
    assert {k: v for k, v in changed.items() if k != name} == {k: v for k, v in parts.items() if k != name}


# -- io helpers ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("member", ["/etc/passwd", "\\evil.txt", "a/../../b", "../x", "C:/x", "C:x", "a\\..\\..\\b"])
def test_safe_member_rejects_escaping_names(member):
    with pytest.raises(DataFormatError, match=r"arch\.zip: unsafe member name .* expected relative paths like a/b"):
        io.safe_member(member, Path("arch.zip"), "relative paths like a/b")


def test_safe_member_accepts_relative_names():
    assert io.safe_member("a/b.zarr/.zattrs", "x.zip") == "a/b.zarr/.zattrs"
    assert io.safe_member("a\\b", "x.zip") == "a/b"
    assert io.safe_member("a/..b/c", "x.zip") == "a/..b/c"  # '..b' is a name, not a parent reference


def test_atomic_write_leaves_nothing_on_error(tmp_path):
    dest = tmp_path / "sub" / "f.json"
    with pytest.raises(RuntimeError):
        with io.atomic_path(dest) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert list((tmp_path / "sub").iterdir()) == []
    io.write_text_atomic(dest, "old")
    with pytest.raises(KeyboardInterrupt):
        with io.atomic_path(dest) as tmp:
            tmp.mkdir()
            (tmp / "x").write_text("dir")
            raise KeyboardInterrupt
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["f.json"] and dest.read_text() == "old"
    io.write_bytes_atomic(dest, b"new")
    assert dest.read_bytes() == b"new" and [p.name for p in (tmp_path / "sub").iterdir()] == ["f.json"]


def test_copy_stream_atomic(tmp_path):
    import io as _io

    data = os.urandom(3000)
    out = io.copy_stream_atomic(_io.BytesIO(data), tmp_path / "c.bin", block=1000)
    assert out.read_bytes() == data and hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(data).digest()


def test_create_array_sets_dims_and_cf_attrs(tmp_path):
    root = zarr.open_group(str(tmp_path / "s.zarr"), mode="w", zarr_format=2)
    io.create_array(root, "t", dims=("time",), units="s", long_name="time", attrs={"description": "d"},
                    data=np.arange(3.0))
    io.create_array(root, "axis", dims=("axis",), long_name="spatial axis", data=np.array(["x", "y", "z"]))
    io.create_array(root, "c", dims=("i", "j"), units="1", long_name="c", shape=(0, 2), chunks=(4, 2), dtype="float32",
                    fill_value=np.nan)
    meta = json.loads((tmp_path / "s.zarr" / "t" / ".zattrs").read_text())
    assert list(meta) == ["_ARRAY_DIMENSIONS", "units", "long_name", "description"] and meta["units"] == "s"
    assert json.loads((tmp_path / "s.zarr" / "axis" / ".zattrs").read_text()) == {"_ARRAY_DIMENSIONS": ["axis"],
                                                                                 "long_name": "spatial axis"}
    ds = xr.open_zarr(tmp_path / "s.zarr", consolidated=False)
    assert ds.t.values.tolist() == [0.0, 1.0, 2.0] and ds.c.shape == (0, 2)
    with pytest.raises(ValueError, match=r"array 'u': long_name is '', expected a non-empty string"):
        io.create_array(root, "u", dims=("i",), long_name="", data=np.zeros(2))
    with pytest.raises(ValueError, match=r"array 'u': dims \('i', 'j'\) do not match shape \(2,\)"):
        io.create_array(root, "u", dims=("i", "j"), long_name="u", data=np.zeros(2))
