"""The task core: card validation, the card registry, the shared submission checker, split digests."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from neuroharness.errors import SubmissionError
from neuroharness.registry import Registry
from neuroharness.tasks import get_card, list_tasks
from neuroharness.tasks.base import split_digest
from neuroharness.tasks.card import CardError, DatasetRef, MetricSpec, ModelSpec, TaskCard, TaskOption, import_object
from neuroharness.tasks.submission import Column, TableSpec, check_names, check_table


def _card(**changes) -> TaskCard:
    base = dict(
        name="t", version="1.0", title="T", description="d", datasets=(DatasetRef("celegans-connectome", "1.0"),),
        split="s", inputs="i", targets="y", metrics=(MetricSpec("auc", True, "a"), MetricSpec("mse", False, "m")),
        main_metric="auc", implementation="pkg.mod:Task",
        chance={"auc": "0.5"}, options={"graph": TaskOption("g1", "which graph", ("g1", "g2"))},
        models=(ModelSpec("m1", "pkg.mod:M", "model"),),
    )
    base.update(changes)
    return TaskCard(**base)


# -- cards are validated when defined -------------------------------------------------
def test_a_consistent_card_is_accepted():
    card = _card()
    assert card.higher_is_better and card.model_specs["m1"].factory == "pkg.mod:M"
    assert card.to_dict()["models"] == {"m1": "model"}


@pytest.mark.parametrize("changes, message", [
    ({"main_metric": "roc"}, r"main_metric 'roc' is not one of its metrics \['auc', 'mse'\]"),
    ({"chance": {"ap": "0.1"}}, r"chance levels for \['ap'\], which are not metrics of the card"),
    ({"options": {"graph": TaskOption("g3", "x", ("g1", "g2"))}}, r"option graph default 'g3' is not among its choices"),
    ({"description": None}, r"field description must be a non-empty string, got None"),
    ({"split": ""}, r"field split must be a non-empty string"),
    ({"datasets": ()}, r"datasets must be a non-empty tuple of DatasetRef"),
    ({"metrics": (MetricSpec("auc", True, "a"), MetricSpec("auc", True, "b"))}, r"metric names repeat"),
    ({"models": (ModelSpec("m", "a:b", "x"), ModelSpec("m", "a:c", "y"))}, r"model names repeat"),
    ({"seeds": ()}, r"seeds must be a non-empty tuple of integers"),
    ({"implementation": "pkg.mod.Task"}, r"implementation 'pkg.mod.Task' is not 'package.module:Class'"),
])
def test_inconsistent_cards_cannot_be_defined(changes, message):
    with pytest.raises(CardError, match=f"task card 't': {message}"):
        _card(**changes)


def test_import_object_needs_module_and_attribute():
    assert import_object("neuroharness.tasks.card:TaskCard") is TaskCard
    with pytest.raises(CardError, match="expected 'package.module:attribute'"):
        import_object("neuroharness.tasks.card.TaskCard")


def test_every_registered_card_names_registered_datasets_and_importable_models():
    from neuroharness.loaders import get_card as dataset_card
    from neuroharness.loaders import list_datasets

    datasets = set(list_datasets())
    assert list_tasks(), "no task registered"
    for name in list_tasks():
        card = get_card(name)
        for ref in card.datasets:
            assert ref.name in datasets, f"{name} names unregistered dataset {ref.name}"
            assert dataset_card(ref.name).version == ref.version, f"{name} reads {ref.name} {ref.version}"
        cls = import_object(card.implementation)
        assert cls.card is card, f"{card.implementation} does not run card {name}"
        for spec in card.models:
            assert callable(spec.resolve_factory()), f"{name} model {spec.name}: {spec.factory}"


def test_registry_skips_a_broken_family_and_lists_the_rest(tmp_path, monkeypatch, caplog):
    pkg = tmp_path / "fakepkg"
    for family, body in {
        "good": "from dataclasses import dataclass\n@dataclass(frozen=True)\nclass C:\n    name: str\nCARDS = (C('a'), C('b'))\n",
        "broken": "import no_such_module_anywhere\nCARDS = ()\n",
        "nocards": None,
    }.items():
        (pkg / family).mkdir(parents=True)
        (pkg / family / "__init__.py").write_text("")
        if body is not None:
            (pkg / family / "cards.py").write_text(body)
    (pkg / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = Registry("thing", "fakepkg")
    with caplog.at_level("WARNING", logger="neuroharness"):
        assert reg.names() == ["a", "b"]
    assert list(reg.broken) == ["fakepkg.broken.cards"]
    assert "No module named 'no_such_module_anywhere'" in reg.broken["fakepkg.broken.cards"]
    assert "skipping thing cards from fakepkg.broken.cards" in caplog.text
    with pytest.raises(ValueError, match="defined twice"):
        reg.register(_card(name="a"), "elsewhere")


def test_cards_and_listing_work_under_python_OO():
    code = textwrap.dedent("""
        from neuroharness.tasks import get_card, list_tasks
        from neuroharness.loaders import list_datasets
        for n in list_tasks():
            c = get_card(n)
            assert c.description and c.split, n
        print(len(list_tasks()), len(list_datasets()))
    """)
    out = subprocess.run([sys.executable, "-OO", "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    n_tasks, n_datasets = map(int, out.stdout.split())
    assert n_tasks == len(list_tasks()) and n_datasets >= 5


def test_listing_cards_imports_no_heavy_module():
    code = textwrap.dedent("""
        import sys
        from neuroharness.tasks import get_card, list_tasks
        for n in list_tasks():
            get_card(n).models
        heavy = sorted(m for m in ("torch", "numba", "xarray", "zarr", "numpy", "pandas") if m in sys.modules)
        print(",".join(heavy))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


# -- the shared submission checker ------------------------------------------------------
PAIRS = TableSpec(ids=(Column("node1", "int", "node ids", 0, 9, "graph has node ids 0..9"), Column("node2", "int", "node ids", 0, 9)),
                  values=(Column("score", "float"),), unordered=True, items="pairs", scope=" of graph g")
NAMES = TableSpec(ids=(Column("a", "str", "names"), Column("b", "str", "names")), values=(Column("y", "float"),),
                  items="pairs", id_format="pair ({a} -> {b})")
LABELS = TableSpec(ids=(Column("vessel", "int", "edge ids"),), values=(Column("label", "int", "classes", 0, 2),),
                   items="vessels", id_format="vessel {vessel}")


@pytest.fixture
def pairs():
    expected = pd.DataFrame({"node1": [0, 1, 2, 3], "node2": [5, 4, 9, 8]})
    table = pd.DataFrame({"node2": [8, 1, 5, 2], "node1": [3, 4, 0, 9], "score": [0.4, 0.2, 0.1, 0.3]})
    return expected, table


def test_check_table_aligns_unordered_pairs_to_the_template(pairs):
    expected, table = pairs
    out = check_table(table, PAIRS, expected, "test")
    # (1, 4) was given as (4, 1) and (2, 9) as (9, 2): either order is the same pair
    assert out["score"].tolist() == [0.1, 0.2, 0.3, 0.4] and out["score"].dtype == np.float64


@pytest.mark.parametrize("mutate, message", [
    (lambda t: t.drop(columns="score"), r"^predictions: missing column\(s\) \['score'\]; found \['node2', 'node1'\]"),
    (lambda t: t.assign(score=[0.4, np.nan, 0.1, 0.3]), r"column 'score' has 1 NaN/inf value\(s\), first at row 1$"),
    (lambda t: t.assign(score=[0.4, 0.2, np.inf, -np.inf]), r"column 'score' has 2 NaN/inf value\(s\), first at row 2$"),
    (lambda t: t.assign(score=["a", "b", "c", "d"]), r"column 'score' has dtype .*, expected numbers"),
    (lambda t: t.assign(score=[True, False, True, False]), r"column 'score' has dtype bool, expected numbers"),
    (lambda t: t.assign(node1=t["node1"].astype(float)), r"column 'node1' has dtype float64, expected an integer dtype \(node ids\)"),
    (lambda t: t.assign(node1=[3.5, 4.0, 0.0, 9.0]), r"column 'node1' row 0 is 3\.5; expected integers \(node ids\)"),
    (lambda t: t.assign(node1=pd.array([None, 4, 0, 9], dtype="Int64")), r"column 'node1' has 1 missing value\(s\), first at row 0"),
    (lambda t: t.assign(node1=[3, 4, 0, 10]), r"row 3, column 'node1': value 10 out of range; graph has node ids 0\.\.9"),
    (lambda t: t.assign(node1=[3, 4, 0, -1]), r"row 3, column 'node1': value -1 out of range"),
    (lambda t: t.assign(node1=[8, 4, 0, 9]), r"row 0 pairs node 8 with itself"),
    (lambda t: pd.concat([t, t.iloc[[1]].rename(columns={"node1": "node2", "node2": "node1"})]),
     r"\(1, 4\) appears more than once \(1 repeated row\(s\); a pair counts once in either order\)"),
    (lambda t: t.assign(node2=[8, 1, 6, 2]), r"1 row\(s\) are not test pairs of graph g, e\.g\. \(0, 6\); expected exactly the 4 pairs"),
    (lambda t: t.iloc[1:], r"1 of 4 test pairs of graph g missing, e\.g\. \(3, 8\)"),
])
def test_check_table_names_column_row_and_problem(pairs, mutate, message):
    expected, table = pairs
    with pytest.raises(SubmissionError, match=message):
        check_table(mutate(table), PAIRS, expected, "test")


def test_check_table_string_ids_and_formatted_rows():
    expected = pd.DataFrame({"a": ["x", "y", "z"], "b": ["y", "z", "x"]})
    table = pd.DataFrame({"a": ["z", "x", "y"], "b": ["x", "y", "z"], "y": [3.0, 1.0, 2.0]})
    assert check_table(table, NAMES, expected, "val")["y"].tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(SubmissionError, match=r"column 'a' has dtype int64, expected strings \(names\)"):
        check_table(table.assign(a=[1, 2, 3]), NAMES, expected, "val")
    with pytest.raises(SubmissionError, match=r"pair \(x -> y\) appears more than once"):
        check_table(pd.concat([table, table.iloc[[1]]]), NAMES, expected, "val")
    with pytest.raises(SubmissionError, match=r"1 row\(s\) are not val pairs, e\.g\. pair \(q -> x\)"):
        check_table(table.assign(a=["q", "x", "y"]), NAMES, expected, "val")
    # ordered pairs: (y, x) is not (x, y)
    with pytest.raises(SubmissionError, match=r"are not val pairs, e\.g\. pair \(y -> x\)"):
        check_table(table.assign(a=["z", "y", "y"], b=["x", "x", "z"]), NAMES, expected, "val")


def test_check_table_integer_labels_and_reading_files(tmp_path):
    expected = pd.DataFrame({"vessel": [10, 20, 30]})
    table = pd.DataFrame({"vessel": [30, 10, 20], "label": [2, 0, 1]})
    out = check_table(table, LABELS, expected, "test")
    assert out["label"].tolist() == [0, 1, 2] and out["label"].dtype == np.int64
    with pytest.raises(SubmissionError, match=r"row 0 \(vessel 30\), column 'label': value 3 out of range; expected 0\.\.2"):
        check_table(table.assign(label=[3, 0, 1]), LABELS, expected, "test")
    with pytest.raises(SubmissionError, match=r"column 'label' has dtype bool, expected integers \(classes\)"):
        check_table(table.assign(label=[True, False, True]), LABELS, expected, "test")
    path = tmp_path / "p.parquet"
    table.assign(label=[0, 0, 7]).to_parquet(path)
    with pytest.raises(SubmissionError, match=rf"^{path}: row 2 \(vessel 20\), column 'label': value 7"):
        check_table(path, LABELS, expected, "test")


def test_check_names_exact_set():
    check_names(["b", "a"], ["a", "b"], "f.npz", "test")
    with pytest.raises(SubmissionError, match=r"f\.npz: 'c' is not one of the test samples"):
        check_names(["a", "b", "c"], ["a", "b"], "f.npz", "test")
    with pytest.raises(SubmissionError, match=r"f\.npz: no entry for 1 of 2 test samples: b"):
        check_names(["a"], ["a", "b"], "f.npz", "test")
    with pytest.raises(SubmissionError, match=r"'a' appears more than once"):
        check_names(["a", "a", "b"], ["a", "b"], "f.npz", "test")


# -- split digests ------------------------------------------------------------------------
def test_split_digest_depends_on_ids_and_order_not_on_int_width():
    ids = pd.DataFrame({"node1": np.array([0, 1, 2], dtype=np.int64), "node2": np.array([5, 4, 9], dtype=np.int64)})
    d = split_digest(ids)
    assert d == split_digest(ids.astype(np.int32))
    assert d != split_digest(ids.iloc[[1, 0, 2]])
    assert d != split_digest(ids.rename(columns={"node2": "other"}))
    assert d != split_digest(ids.assign(node2=[5, 4, 8]))
    names = pd.DataFrame({"a": ["x", "y"]})
    assert split_digest(names) != split_digest(pd.DataFrame({"a": ["xy", ""]}))  # separators matter
    # pinned: a changed digest function would silently make every record incomparable with older ones
    assert split_digest(names) == "4ce55d984ffc71c0960565a221a97aab4df989bb4e9d9a92591c90850d0b68d9"


def test_run_result_is_typed():
    from neuroharness.tasks.base import RunResult

    fields = {f.name for f in dataclasses.fields(RunResult)}
    assert fields == {"metrics", "validation_metrics", "n_parameters", "hyperparameters", "fitted", "split_sha256",
                      "fit_predict_seconds"}
