"""Models from outside the repository: training views, protocols, entry-point plugins, import strings.

Plugins are fake distributions (a ``*.dist-info`` folder with ``entry_points.txt``) on ``sys.path``;
the example package under ``examples/`` is pip-installed into a temporary folder and run through the
CLI in a subprocess (its ``PYTHONPATH``), so the test environment itself is left unchanged.
"""
from __future__ import annotations

import importlib.util
import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from neuroharness import __version__
from neuroharness.cli import main
from neuroharness.errors import UnknownNameError
from neuroharness.tasks import get_card, get_task, list_tasks
from neuroharness.tasks import plugins
from neuroharness.tasks.protocols import BY_TASK

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "neuroharness-example-plugin"
SF = "celegans-structure-function"
HAVE_CELEGANS = importlib.util.find_spec("cect") is not None and importlib.util.find_spec("wormneuroatlas") is not None
NEEDS_CELEGANS = pytest.mark.skipif(
    not HAVE_CELEGANS,
    reason="needs the cect and wormneuroatlas wheels installed (pip install --no-deps cect==0.3.5 wormneuroatlas==0.0.7.3)")
BUILTIN = {"kind": "builtin", "package": "neuroharness", "version": __version__}


def fake_distribution(site: Path, name: str, version: str, entries: dict[str, str], modules: dict[str, str] = {}):
    """A distribution ``name`` installed in folder ``site``: metadata, entry points, and module files."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(
        "[neuroharness.models]\n" + "".join(f"{k} = {v}\n" for k, v in entries.items()))
    for mod, text in modules.items():
        (site / f"{mod}.py").write_text(text)


@pytest.fixture
def site(tmp_path, monkeypatch):
    path = tmp_path / "site"
    path.mkdir()
    monkeypatch.syspath_prepend(str(path))
    return path


# -- protocols ------------------------------------------------------------------------------------
def test_every_task_has_a_protocol_and_every_builtin_model_follows_it():
    assert set(BY_TASK) == set(list_tasks())
    for name, protocol in BY_TASK.items():
        for spec in get_card(name).models:
            model = spec.build()
            assert isinstance(model, protocol), f"{name} {spec.name} does not follow {protocol.__name__}"


# -- training views -------------------------------------------------------------------------------
def test_vessel_training_view_hides_test_labels():
    from neuroharness.tasks.vesselgraph.vessel_classification import VesselData

    label = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    split = {"train": np.arange(0, 6), "val": np.array([6, 7]), "test": np.array([8, 9])}
    data = VesselData("g", "x", np.zeros((10, 3)), label, split, np.array([[i, i + 1] for i in range(10)]), 11)
    view = get_task("vesselgraph-vessel-classification").training_view_of(data)
    assert (view.label[split["test"]] == -1).all()
    assert np.array_equal(view.label[:8], label[:8]) and (data.label == label).all()


def test_link_training_view_has_no_test_pairs():
    from neuroharness.tasks.vesselgraph.link_prediction import LinkData, build_split

    pos = np.column_stack([np.arange(12.0), np.zeros(12), np.zeros(12)])
    edges = np.array(list(itertools.pairwise([i for i in range(12) if i != 5])))
    s = build_split(edges, pos, np.full(10, 10.0), n_workers=1)
    view = get_task("vesselgraph-link-prediction").training_view_of(s)
    assert isinstance(view, LinkData)
    assert np.array_equal(view.train_pos, s.pos_pairs["train"]) and np.array_equal(view.val_neg, s.neg_pairs["val"])
    seen = {tuple(p) for a in (view.train_pos, view.train_neg, view.val_pos, view.val_neg) for p in a.tolist()}
    test = np.concatenate([s.pos_pairs["test"], s.neg_pairs["test"], s.random_pairs["test"]])
    assert not seen & {tuple(p) for p in test.tolist()}


def test_fisbe_training_view_cannot_read_test_samples(tmp_path):
    import zarr

    from neuroharness.tasks.fisbe.instance_segmentation import StoreData

    zarr.open_group(str(tmp_path / "s.zarr"), mode="w")
    index = pd.DataFrame({"sample": ["a", "b", "c"], "subset": ["completely"] * 3, "split": ["train", "val", "test"],
                          "n_instances": [1, 1, 1], "size_z": [2] * 3, "size_y": [2] * 3, "size_x": [2] * 3})
    view = get_task("fisbe-instance-segmentation").training_view_of(StoreData(str(tmp_path / "s.zarr"), index))
    assert view.samples("train") == ["a"] and view.samples("val") == ["b"] and view.samples("test") == []
    with pytest.raises(KeyError, match="sample 'c' is not in this view"):
        view.raw("c")


def test_forecast_training_view_has_no_test_segments():
    from neuroharness.tasks.celegans.forecast import ForecastData, ForecastSplit
    from neuroharness.tasks.celegans.windows import Segment

    def split(w):
        return ForecastSplit([Segment(w, 0, 10)], [Segment(w, 10, 20)], [Segment(w + 1, 0, 30)])

    data = ForecastData(store="STORE", splits={"worms": split(0), "time": split(2)}, connectome="C")
    view = get_task("celegans-forecast").training_view_of(data)
    assert view.store == "STORE" and view.connectome == "C" and set(view.protocols) == {"worms", "time"}
    for name, p in view.protocols.items():
        assert p.test == [] and p.train == data.splits[name].train and p.val == data.splits[name].val


@NEEDS_CELEGANS
def test_structure_function_training_view():
    task = get_task(SF)
    data = task.data()
    view = task.training_view()
    assert view.train is data.splits["train"] and view.val is data.splits["val"] and not hasattr(view, "test")
    table = view.table("train")
    assert list(table.columns) == ["responding", "stimulated", "significant", "amplitude"]
    assert len(table) == len(data.splits["train"]) and table["significant"].sum() == data.splits["train"].significant.sum()
    test_stim = set(task.ids(data, "test")["stimulated"])
    assert not test_stim & set(table["stimulated"]) and not test_stim & set(view.table("val")["stimulated"])
    with pytest.raises(ValueError, match="'train' and 'val'"):
        view.table("test")


# -- entry points -----------------------------------------------------------------------------------
def test_plugin_models_are_listed_from_metadata_without_import(site, capsys):
    fake_distribution(site, "nh-fake-plugin", "1.2.3", {f"{SF}:fake": "nh_fake_never_imported:Model"})
    task = get_task(SF)
    spec = task.models["fake"]
    assert list(task.models)[:4] == [m.name for m in task.card.models]  # card models first
    assert plugins.origin_of(spec) == {"kind": "plugin", "package": "nh-fake-plugin", "version": "1.2.3"}
    assert plugins.origin_of(task.models["chance"]) == BUILTIN
    assert main(["models", "list", SF]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if " fake " in line)
    assert row.split() == [SF, "fake", "plugin", "nh-fake-plugin", "1.2.3", "-"]
    assert main(["models", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"task": SF, "model": "fake", "origin": "plugin", "package": "nh-fake-plugin", "version": "1.2.3",
            "factory": "nh_fake_never_imported:Model", "description": None} in rows
    assert "nh_fake_never_imported" not in sys.modules
    # other tasks do not get it
    assert "fake" not in get_task("celegans-forecast").models


def test_clash_with_a_builtin_names_both_packages(site, capsys):
    fake_distribution(site, "nh-clash", "0.1", {f"{SF}:chance": "nh_clash:Model"})
    with pytest.raises(plugins.PluginError) as e:
        get_task(SF).models
    msg = str(e.value)
    assert "'chance'" in msg and "nh-clash 0.1" in msg and f"neuroharness {__version__}" in msg
    assert main(["models", "list", SF]) == 2
    assert "nh-clash 0.1" in capsys.readouterr().err


def test_clash_between_two_plugins_names_both_packages(site, capsys):
    fake_distribution(site, "nh-one", "1.0", {f"{SF}:same": "nh_one:Model"})
    fake_distribution(site, "nh-two", "2.0", {f"{SF}:same": "nh_two:Model"})
    assert main(["run", SF, "--model", "same", "--out", str(site / "out")]) == 2
    err = capsys.readouterr().err
    assert "'same'" in err and "nh-one 1.0" in err and "nh-two 2.0" in err
    assert not (site / "out").exists()


def test_malformed_and_unknown_task_entries_are_reported(site, capsys):
    fake_distribution(site, "nh-odd", "1.0", {"no-colon": "nh_odd:A", "no-such-task:m": "nh_odd:B"})
    assert main(["models", "list"]) == 0
    err = capsys.readouterr().err
    assert "'no-colon'" in err and "expected the name TASK:MODEL" in err
    assert "'no-such-task:m'" in err and "names no registered task" in err


def test_unknown_model_lists_plugins_too(site, capsys):
    fake_distribution(site, "nh-fake-plugin", "1.0", {f"{SF}:fake": "nh_fake:Model"})
    with pytest.raises(UnknownNameError, match="valid models: chance, connectome-direct, connectome-multihop, "
                                               "fake, gnn-link"):
        get_task(SF).get_model("nope")


def test_a_factory_that_raises_is_named_and_nothing_is_written(site, capsys):
    fake_distribution(site, "nh-broken", "0.3", {f"{SF}:broken": "nh_broken:Model", f"{SF}:noimport": "nh_gone:M"},
                      {"nh_broken": "class Model:\n    def __init__(self):\n        raise RuntimeError('no GPU here')\n"})
    out = site / "out"
    assert main(["run", SF, "--model", "chance", "broken", "--seeds", "0", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "model broken of task celegans-structure-function (from nh-broken 0.3" in err
    assert "raised RuntimeError: no GPU here" in err
    assert not out.exists()
    assert main(["run", SF, "--model", "noimport", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "model noimport" in err and "cannot import its factory nh_gone:M: ModuleNotFoundError" in err
    assert not out.exists()
    with pytest.raises(plugins.PluginError, match="no GPU here"):
        get_task(SF).run_model("broken", 0)


def test_import_string_models(site, capsys):
    (site / "nh_loose.py").write_text("class Model:\n    '''A loose model.\n\n    more'''\n\n"
                                      "    def __init__(self, k=1):\n        self.k = k\n")
    spec = get_task(SF).get_model("nh_loose:Model")
    assert plugins.origin_of(spec) == {"kind": "plugin", "package": "unregistered", "version": None}
    assert plugins.description(spec) == "A loose model."
    assert get_task(SF).build_model("nh_loose:Model", {"k": 3}).k == 3
    # a factory of an installed distribution gets that distribution's name and version
    origin = plugins.origin_of(plugins.import_string_spec("sklearn.linear_model:LogisticRegression"))
    assert origin["kind"] == "plugin" and origin["package"] == "scikit-learn" and origin["version"]
    assert plugins.origin_of(plugins.import_string_spec(
        "neuroharness.tasks.celegans.structure_function_baselines:ChanceModel")) == BUILTIN
    # checked before any data is read: unknown hyperparameters, unimportable modules
    assert main(["run", SF, "--model", "nh_loose:Model", "--hyperparameter", "epochs=3",
                 "--out", str(site / "o")]) == 2
    assert "model nh_loose:Model of task celegans-structure-function has no hyperparameter 'epochs'" in \
        capsys.readouterr().err
    assert main(["run", SF, "--model", "nh_missing.mod:Model", "--out", str(site / "o")]) == 2
    assert "cannot import its factory nh_missing.mod:Model: ModuleNotFoundError" in capsys.readouterr().err
    assert main(["run", SF, "--model", "not an import string", "--out", str(site / "o")]) == 2
    assert "unknown model 'not an import string'" in capsys.readouterr().err
    assert not (site / "o").exists()


# -- the example plugin package, installed --------------------------------------------------------------
@pytest.fixture(scope="module")
def installed_example(tmp_path_factory):
    """The example package pip-installed (offline, no build isolation) into a temporary folder."""
    tmp = tmp_path_factory.mktemp("example_plugin")
    src = tmp / "src"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = tmp / "site"
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
           "--disable-pip-version-check", "--quiet", "--target", str(target), str(src)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"pip install of the example plugin failed:\n{done.stdout}\n{done.stderr}")
    return target


def _cli(target: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    return subprocess.run([sys.executable, "-m", "neuroharness.cli", *args], capture_output=True, text=True, env=env)


def test_example_plugin_is_listed(installed_example):
    done = _cli(installed_example, "models", "list", SF)
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if " logreg " in line)
    assert row.split() == [SF, "logreg", "plugin", "neuroharness-example-plugin", "0.1.0", "-"]


@NEEDS_CELEGANS
def test_example_plugin_runs_through_the_cli(installed_example, tmp_path):
    out = tmp_path / "results"
    done = _cli(installed_example, "run", SF, "--model", "logreg", "--seeds", "0", "--out", str(out))
    assert done.returncode == 0, done.stderr
    (path,) = out.glob("*.json")
    record = json.loads(path.read_text())
    assert record["model"]["name"] == "logreg"
    assert record["model"]["origin"] == {"kind": "plugin", "package": "neuroharness-example-plugin", "version": "0.1.0"}
    assert record["model"]["description"].startswith("logistic regression on 8 log connectome features")
    assert record["model"]["n_parameters"] == 18
    assert 0.5 < record["metrics"]["roc_auc"] <= 1.0
