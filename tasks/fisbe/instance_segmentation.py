"""Task ``fisbe-instance-segmentation``: segment every neuron in 3-D light microscopy.

Given a three-colour multicolor-flip-out (MCFO) confocal volume of the fruit
fly central nervous system (FlyLight, 0.44 um isotropic, about 400 x 700 x
700 voxels), output one instance per labeled neuron. Neurons are long, thin
(a few voxels across) and branching; they cross and overlap, and their
colour is the main cue that tells them apart. Scored with the FISBe metrics
(clDice-based matching), after removing predicted instances of 800 voxels
or fewer as in the benchmark's preset.

Split: as released (``sample_list_per_split.txt``, grouped by transgenic
line): completely labeled 18 train / 5 val / 7 test volumes, partly labeled
43 / 12 / 16. Scores are computed on the test volumes of both subsets
(validation: ``split="val"``); partly labeled volumes are scored in partly
mode (unmatched predictions lying mainly on unlabeled voxels are not false
positives). The main score is S of the combined set: the unweighted mean of
the completely and partly sets' S (FS/FM summed, tp and clDice_TP pooled);
when the prepared store holds only one subset, that subset's S.
"""
from __future__ import annotations

import math
import os
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from neuroharness.errors import DataFormatError, NeuroharnessError, SubmissionError

from .base import DatasetRef, MetricSpec, ModelSpec, Task, TaskCard, register_task

SUBSETS = ("completely", "partly")
METRICS = ("S", "avF1", "C", "clDice_TP", "tp", "FS", "FM")
COUNTS = ("n_gt", "n_pred")
REMOVE_SMALL = 800  # the benchmark preset drops predicted instances of <= 800 voxels

_CITE = {
    "FISBe": "Mais L, Hirsch P, Managan C, Kandarpa R, Rumberger JL, Reinke A, Maier-Hein L, Ihrke G, "
             "Kainmueller D (2024) FISBe: a real-world benchmark dataset for instance segmentation of "
             "long-range thin filamentous structures. CVPR 2024, arXiv:2404.00130",
    "PatchPerPix": "Mais L, Hirsch P, Kainmueller D (2020) PatchPerPix for instance segmentation. ECCV 2020",
    "Duan et al.": "Duan B, Walker LA, Roossien DH, Shen FY, Cai D, Yan Y (2020) Unsupervised neural tracing in "
                   "densely labeled multispectral brainbow images. bioRxiv, doi:10.1101/2020.06.07.138941",
    "FFN": "Januszewski M, Kornfeld J, Li PH, et al. (2018) High-precision automated reconstruction of neurons "
           "with flood-filling networks. Nat Methods 15:605, doi:10.1038/s41592-018-0049-4",
}
_PAPER = "Mais et al. CVPR 2024 (arXiv:2404.00130), official leaderboard"

#: Published baselines on the FISBe v1.0 test set (the official leaderboard,
#: kainmueller-lab.github.io/fisbe, believed to equal the paper's table).
#: ``set``: "combined" (completely + partly, 23 volumes) or "completely" (7).
REFERENCE_ROWS: tuple[dict, ...] = tuple(
    {"method": m, "set": st, "S": s, "avF1": f, "C": c, "clDice_TP": d, "tp": tp, "FS": fs, "FM": fm,
     "source": _PAPER, "citation": _CITE["FFN" if m.startswith("FFN") else m]}
    for st, rows in (
        ("combined", (("PatchPerPix", .35, .34, .35, .80, .36, 19, 52), ("Duan et al.", .30, .27, .33, .77, .37, 45, 29),
                      ("FFN+partly", .27, .24, .31, .80, .36, 18, 36), ("FFN", .25, .22, .29, .80, .32, 17, 39))),
        ("completely", (("PatchPerPix", .34, .29, .40, .81, .45, 3, 4), ("Duan et al.", .28, .23, .33, .81, .38, 6, 1),
                        ("FFN+partly", .19, .10, .29, .80, .34, 2, 2), ("FFN", .18, .11, .26, .77, .31, 2, 2))),
    )
    for m, s, f, c, d, tp, fs, fm in rows
)


def _reference_lines() -> tuple[str, ...]:
    lines = [f"dataset and metrics: {_CITE['FISBe']}"]
    for m in dict.fromkeys(r["method"] for r in REFERENCE_ROWS):
        parts = []
        for r in (r for r in REFERENCE_ROWS if r["method"] == m):
            parts.append(f"{r['set']} S {r['S']:.2f}, avF1 {r['avF1']:.2f}, C {r['C']:.2f}, clDice_TP {r['clDice_TP']:.2f}, "
                         f"tp {r['tp']:.2f}, FS {r['FS']}, FM {r['FM']}")
        lines.append(f"{m} (test; {_PAPER}): " + "; ".join(parts) + f". Method: {_CITE['FFN' if m.startswith('FFN') else m]}"
                     + (" (trained on completely + partly)" if m == "FFN+partly" else ""))
    return tuple(lines)


# -- scoring -----------------------------------------------------------------------
def aggregate(per_sample: dict[str, dict], subset_of: dict[str, str]) -> dict:
    """Flat metrics from per-volume :func:`~neuroharness.metrics.instance_segmentation.evaluate_instances` results.

    Keys: ``S, avF1, C, clDice_TP, tp, FS, FM, n_gt, n_pred`` of the combined
    set (or of the only subset present, with a ``note``), the same under
    ``completely/`` and ``partly/`` (plus ``n_samples``), under ``<sample>/``
    for every volume (plus ``n_removed``), ``n_subsets`` and ``main_score``
    (= ``S``). clDice_TP is NaN where there is no TP at 0.5.
    """
    from neuroharness.metrics.instance_segmentation import combine, summarize

    if not per_sample:
        raise ValueError("per_sample: no scored volumes")
    out: dict = {}
    by_subset = {s: [per_sample[k] for k in per_sample if subset_of[k] == s] for s in SUBSETS}
    summaries = {s: summarize(v) for s, v in by_subset.items() if v}
    if len(summaries) == 2:
        top = combine(summaries["completely"], summaries["partly"])
        top["n_pred"] = summaries["completely"]["n_pred"] + summaries["partly"]["n_pred"]
    else:
        (only, top), = summaries.items()
        out["note"] = (f"the prepared store holds only {only}-labeled samples of this split: "
                       f"the scores are that subset's, not the combined set's")
    out["main_score"] = float(top["S"])
    for k in METRICS + COUNTS:
        out[k] = top[k]
    out["n_subsets"] = len(summaries)
    for s, summ in summaries.items():
        for k in METRICS + COUNTS:
            out[f"{s}/{k}"] = summ[k]
        out[f"{s}/n_samples"] = summ["n_volumes"]
    for name, res in per_sample.items():
        summ = summarize([res])
        for k in METRICS + COUNTS:
            out[f"{name}/{k}"] = summ[k]
        out[f"{name}/n_removed"] = int(res["n_removed"])
    return {k: (float(v) if isinstance(v, (float, np.floating)) else int(v) if isinstance(v, (int, np.integer)) else v)
            for k, v in out.items()}


# -- submissions ---------------------------------------------------------------------
class PredictionFile:
    """The arrays of a submission, by name, read lazily (one volume in memory at a time).

    ``source``: a ``.npz`` file (read with ``allow_pickle=False``; array
    headers are read without loading the data), a Zarr directory (``.zarr``
    or any folder holding ``.zgroup``/``zarr.json``), a zipped Zarr
    (``.zip``), or a dict ``{name: array}``. Nothing is ever unpickled and
    Zarr stores are opened read-only.
    """

    def __init__(self, source):
        self._zip = self._group = self._dict = None
        if isinstance(source, dict):
            self.name = "predictions"
            self._dict = {str(k): v for k, v in source.items()}
            self.names = list(self._dict)
            return
        path = Path(source)
        self.name = str(path)
        if not path.exists():
            raise SubmissionError(f"{path}: file not found")
        suffix = path.suffix.lower()
        try:
            if suffix == ".npz":
                self._zip = zipfile.ZipFile(path)
                members = [m for m in self._zip.namelist() if not m.endswith("/")]
                bad = [m for m in members if not m.endswith(".npy")]
                if bad:
                    raise SubmissionError(f"{path}: member {bad[0]!r} is not a .npy array")
                self._members = {m[: -len(".npy")]: m for m in members}
                self.names = list(self._members)
                return
            import zarr

            if suffix == ".zip":
                store = zarr.storage.ZipStore(str(path), mode="r")
            elif path.is_dir() and (suffix == ".zarr" or any((path / f).exists() for f in (".zgroup", "zarr.json"))):
                store = zarr.storage.LocalStore(str(path), read_only=True)
            else:
                raise SubmissionError(f"{path}: unsupported format {suffix or '(folder)'!r}; use .npz, a .zarr folder "
                                      "or a zipped Zarr (.zip); pickle is never accepted")
            self._group = zarr.open_group(store, mode="r")
            members = dict(self._group.members())
            groups = [k for k, v in members.items() if not isinstance(v, zarr.Array)]
            if groups:
                raise SubmissionError(f"{path}: member {groups[0]!r} is a group; expected one array per sample at the top level")
            self.names = list(members)
        except SubmissionError:
            raise
        except (zipfile.BadZipFile, ValueError, OSError, KeyError) as e:
            raise SubmissionError(f"{path}: unreadable {suffix or 'folder'} predictions ({type(e).__name__}: {e})") from None
        except Exception as e:  # noqa: BLE001 - zarr raises many kinds of errors on a malformed store
            raise SubmissionError(f"{path}: unreadable {suffix or 'folder'} predictions ({type(e).__name__}: {e})") from None

    def header(self, name: str) -> tuple[tuple[int, ...], np.dtype]:
        """(shape, dtype) of array ``name`` without reading its data."""
        if self._dict is not None:
            a = self._dict[name]
            if not hasattr(a, "shape") or not hasattr(a, "dtype"):
                a = np.asarray(a)
            return tuple(a.shape), np.dtype(a.dtype)
        if self._zip is not None:
            try:
                with self._zip.open(self._members[name]) as f:
                    version = np.lib.format.read_magic(f)
                    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                    shape, _, dtype = read(f)
            except (ValueError, OSError, zipfile.BadZipFile) as e:
                raise SubmissionError(f"{self.name}: array {name!r} is not a valid .npy array ({e})") from None
            return tuple(shape), np.dtype(dtype)
        a = self._group[name]
        return tuple(a.shape), np.dtype(a.dtype)

    def load(self, name: str) -> np.ndarray:
        """The data of array ``name`` as a numpy array."""
        try:
            if self._dict is not None:
                return np.asarray(self._dict[name])
            if self._zip is not None:
                with self._zip.open(self._members[name]) as f:
                    return np.load(f, allow_pickle=False)
            return np.asarray(self._group[name][...])
        except (ValueError, OSError, zipfile.BadZipFile) as e:
            raise SubmissionError(f"{self.name}: array {name!r} is unreadable ({e})") from None

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
        if self._group is not None:
            self._group.store.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def check_prediction_header(source: str, name: str, shape: tuple, dtype: np.dtype, volume: tuple) -> None:
    """Raise :class:`SubmissionError` unless (shape, dtype) is a label image or stack of a ``volume`` (Z, Y, X)."""
    volume = tuple(int(v) for v in volume)
    if dtype.kind not in "biu":
        raise SubmissionError(
            f"{source}: array {name!r} (sample {name}) has dtype {dtype}; expected integer labels or bool "
            "instance channels (float, object and other dtypes are not accepted)")
    if len(shape) not in (3, 4) or tuple(shape[-3:]) != volume:
        raise SubmissionError(
            f"{source}: array {name!r} (sample {name}) has shape {tuple(shape)}; expected the raw volume's "
            f"(Z, Y, X) = {volume} as a label image or (N, {', '.join(map(str, volume))}) as an instance stack")


def check_prediction_values(source: str, name: str, a: np.ndarray) -> None:
    """Raise :class:`SubmissionError` if array ``a`` holds negative labels."""
    if a.dtype.kind == "i" and a.size and int(a.min()) < 0:
        raise SubmissionError(
            f"{source}: array {name!r} (sample {name}) holds negative values (min {int(a.min())}); "
            "expected 0 = background and labels >= 1")


def write_predictions(path, predictions: dict[str, np.ndarray]) -> Path:
    """Write a submission: one array per sample id, as ``.npz`` or a ``.zarr`` folder (atomically).

    Each array is a (Z, Y, X) integer label image (0 = background) or a
    (N, Z, Y, X) integer/bool stack of instance channels (overlaps allowed),
    with (Z, Y, X) the sample's raw volume shape. Example::

        write_predictions("preds.npz", {"R14A02-20180905_65_A6": labels, ...})
        neuroharness evaluate fisbe-instance-segmentation preds.npz
    """
    import shutil

    path = Path(path)
    for name, a in predictions.items():
        a = np.asarray(a)
        if a.ndim not in (3, 4) or a.dtype.kind not in "biu":
            raise SubmissionError(f"{path}: array {name!r} has shape {a.shape} and dtype {a.dtype}; expected a "
                                  "(Z, Y, X) integer label image or a (N, Z, Y, X) integer/bool instance stack")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        if path.suffix == ".npz":
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **{str(k): np.asarray(v) for k, v in predictions.items()})
            os.replace(tmp, path)
        elif path.suffix == ".zarr":
            import zarr

            root = zarr.open_group(str(tmp), mode="w", zarr_format=2)
            for name, a in predictions.items():
                a = np.asarray(a)
                chunks = (a.shape[0],) * (a.ndim == 4) + tuple(min(64, n) for n in a.shape[-3:])
                root.create_array(str(name), data=a, chunks=chunks)
            if path.exists():
                shutil.rmtree(path)
            os.replace(tmp, path)
        else:
            raise SubmissionError(f"{path}: unsupported format {path.suffix!r}; use .npz or .zarr")
    finally:
        if tmp.exists():
            shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
    return path


# -- store access ---------------------------------------------------------------------
@dataclass
class StoreData:
    """Volumes of a prepared ``fisbe`` store, read with zarr (implements ``FisbeData`` of the baselines)."""

    store_path: str
    index: pd.DataFrame  # one row per sample: sample, subset, split, n_instances, size_z, size_y, size_x

    def __post_init__(self):
        import zarr

        self._root = zarr.open_group(self.store_path, mode="r")
        self._by = self.index.set_index("sample")

    def samples(self, split: str, subsets=SUBSETS) -> list[str]:
        ix = self.index
        return ix.loc[(ix["split"] == split) & ix["subset"].isin(subsets), "sample"].astype(str).tolist()

    def subset(self, sample: str) -> str:
        return str(self._by.loc[sample, "subset"])

    def shape(self, sample: str) -> tuple[int, int, int]:
        r = self._by.loc[sample]
        return int(r["size_z"]), int(r["size_y"]), int(r["size_x"])

    def _array(self, sample: str, name: str):
        try:
            return self._root[sample][name]
        except KeyError:
            raise DataFormatError(f"{self.store_path}: sample {sample}: array {name!r} missing") from None

    def raw(self, sample: str) -> np.ndarray:
        """(3, Z, Y, X) uint16."""
        a = self._array(sample, "raw")
        if a.ndim != 4 or tuple(a.shape[1:]) != self.shape(sample):
            raise DataFormatError(f"{self.store_path}: sample {sample}: raw has shape {a.shape}; expected "
                                  f"(3, {', '.join(map(str, self.shape(sample)))}) as in the sample index")
        return np.asarray(a[...])

    def gt(self, sample: str) -> np.ndarray:
        """(N, Z, Y, X) bool, one channel per neuron."""
        a = self._array(sample, "gt_instances")
        raw_shape = tuple(self._array(sample, "raw").shape)
        if a.ndim != 4 or tuple(a.shape[1:]) != raw_shape[1:]:
            raise DataFormatError(f"{self.store_path}: sample {sample}: gt_instances has shape {a.shape} but raw "
                                  f"has {raw_shape}; expected (N, Z, Y, X) over the same (Z, Y, X)")
        g = np.asarray(a[...])
        if g.dtype != bool:
            g = g != 0
        if not g.any():
            raise DataFormatError(f"{self.store_path}: sample {sample}: gt_instances is empty (no labeled voxel)")
        return g


# -- models ---------------------------------------------------------------------------
def _threshold_cluster(**kw):
    from .fisbe_baselines import ThresholdClusterModel

    return ThresholdClusterModel(**kw)


def _unet_embedding(**kw):
    from .fisbe_baselines import UNetEmbeddingModel

    return UNetEmbeddingModel(**kw)


@register_task
class FisbeInstanceSegmentation(Task):
    card = TaskCard(
        name="fisbe-instance-segmentation",
        version="1.0",
        title="Segment every neuron in FlyLight MCFO light microscopy (FISBe)",
        description=" ".join(__doc__.split("\n\n")[1].split()),
        datasets=(DatasetRef("fisbe", "1.0"),),
        split=" ".join(__doc__.split("\n\n")[2].split()).removeprefix("Split: "),
        inputs=("raw (3, Z, Y, X) uint16: the three MCFO colour channels (12-bit values), 0.44 um isotropic voxels; "
                "training and validation volumes come with gt_instances"),
        targets=("one instance per labeled neuron, as a (Z, Y, X) integer label image (0 = background) or a "
                 "(N, Z, Y, X) stack of instance channels (overlapping neurons allowed)"),
        metrics=(
            MetricSpec("S", True, "0.5 avF1 + 0.5 C; combined set = mean of the completely and partly sets"),
            MetricSpec("avF1", True, "F1 of greedy one-to-one clDice matching, mean over thresholds 0.1..0.9, counts pooled over volumes"),
            MetricSpec("C", True, "coverage: mean over GT neurons of the skeleton fraction covered by the predictions assigned to it"),
            MetricSpec("clDice_TP", True, "mean clDice of the true-positive matches at threshold 0.5"),
            MetricSpec("tp", True, "true positives at clDice 0.5 / number of GT neurons"),
            MetricSpec("FS", False, "false splits: extra predictions matched to a GT neuron (many-to-many, clRecall > 0.05)"),
            MetricSpec("FM", False, "false merges: extra GT neurons matched to a prediction (many-to-many, clRecall > 0.1)"),
            MetricSpec("completely/S", True, "S of the completely labeled test volumes"),
            MetricSpec("partly/S", True, "S of the partly labeled test volumes (partly mode)"),
        ),
        main_metric="S",
        seeds=(0, 1, 2),
        chance={"S": "0 (an empty prediction scores S = 0: no match and no coverage)", "FS": "0", "FM": "0"},
        submission=(
            "one array per test sample, named by the sample id, in one .npz (no pickle), .zarr folder or zipped Zarr "
            "(.zip): a (Z, Y, X) integer label image (0 = background) or a (N, Z, Y, X) integer/bool stack of instance "
            "channels, (Z, Y, X) = the sample's raw volume shape; no float dtypes, no negative labels. "
            "`neuroharness tasks template fisbe-instance-segmentation ids.parquet` lists the samples and shapes; "
            "neuroharness.tasks.fisbe_instance_segmentation.write_predictions(path, {sample: array}) writes the file"
        ),
        references=_reference_lines(),
    )
    models: ClassVar[dict[str, ModelSpec]] = {
        "threshold-cluster": ModelSpec(
            "threshold-cluster", _threshold_cluster,
            "no learning, CPU: blur + per-volume normalisation, foreground threshold, k-means on chromaticity of "
            "foreground voxels with merged centres, 26-connected components per colour cluster, size filter (> 800)"),
        "unet-embedding": ModelSpec(
            "unet-embedding", _unet_embedding,
            "small 3-D U-Net (foreground + 4-D embedding, discriminative loss) trained on random patches; "
            "foreground embeddings clustered, 26-connected components, size filter (> 800)"),
    }
    #: Published baselines' test scores (see :data:`REFERENCE_ROWS`).
    reference_rows = REFERENCE_ROWS

    _cache: tuple | None = None

    def load(self) -> StoreData:
        """Open the prepared ``fisbe`` store (preparing it if needed) and its sample index."""
        from neuroharness.loaders import get_loader
        from neuroharness.loaders.fisbe import open_fisbe, sample_index

        version = self.card.datasets[0].version
        tree = open_fisbe(version)
        key = tree.attrs.get("content_sha256")
        if self._cache is None or self._cache[0] != key:
            path = str(get_loader("fisbe").store_path(version))
            index = sample_index(tree)
            if "sample" not in index.columns:  # sample ids as the index
                index = index.rename_axis("sample").reset_index()
            self._cache = (key, StoreData(path, index.reset_index(drop=True)))
        return self._cache[1]

    def dataset_checksums(self) -> dict[str, str]:
        self.load()
        return {"fisbe": self._cache[0]}

    def submission_template(self, split: str = "test") -> pd.DataFrame:
        """The samples a submission must cover on ``split``, with their subset and (Z, Y, X) shape."""
        data = self.load()
        ix = data.index
        rows = ix[ix["split"] == self.check_split(split)]
        return rows[["sample", "subset", "size_z", "size_y", "size_x"]].reset_index(drop=True)

    def score_volume(self, data: StoreData, sample: str, pred: np.ndarray) -> dict:
        """evaluate_instances of one prediction against the sample's GT (partly mode for partly samples)."""
        from neuroharness.metrics.instance_segmentation import evaluate_instances

        return evaluate_instances(data.gt(sample), pred, partly=data.subset(sample) == "partly",
                                  remove_small=REMOVE_SMALL)

    def evaluate(self, predictions, split: str = "test") -> dict:
        """Score a submission (path or ``{sample: array}``) on ``split`` ('test' or 'val')."""
        data = self.load()
        expected = data.samples(self.check_split(split))
        if not expected:
            raise SubmissionError(f"the prepared fisbe store holds no {split} samples")
        with PredictionFile(predictions) as pf:
            src = pf.name
            unknown = [n for n in pf.names if n not in expected]
            if unknown:
                raise SubmissionError(f"{src}: array {unknown[0]!r} is not a {split} sample of the prepared store; "
                                      f"expected one array per sample: {', '.join(expected)}")
            missing = [s for s in expected if s not in pf.names]
            if missing:
                raise SubmissionError(f"{src}: no array for {len(missing)} of {len(expected)} {split} samples: "
                                      f"{', '.join(missing)}")
            for s in expected:
                check_prediction_header(src, s, *pf.header(s), data.shape(s))
            per_sample = {}
            for s in expected:
                pred = pf.load(s)
                check_prediction_header(src, s, pred.shape, pred.dtype, data.shape(s))
                check_prediction_values(src, s, pred)
                per_sample[s] = self.score_volume(data, s, pred)
                del pred
        return aggregate(per_sample, {s: data.subset(s) for s in expected})

    def run_model(self, model_name: str, seed: int, hyperparameters: dict | None = None) -> dict:
        """Fit ``model_name`` on the train volumes, predict and score the test volumes.

        ``hyperparameters`` override the registered ones (e.g. ``{"steps": 20000,
        "patch": 64}`` for ``unet-embedding`` on the real release).
        """
        from .model_utils import describe

        spec = self.get_model(model_name)
        data = self.load()
        train, val, test = (data.samples(s) for s in ("train", "val", "test"))
        if not train or not test:
            raise NeuroharnessError(f"the prepared fisbe store holds {len(train)} train and {len(test)} test samples; "
                                    "run_model needs both")
        model = spec.factory(**{**spec.hyperparameters, **(hyperparameters or {})})
        t0 = time.perf_counter()
        model.fit(data, train, val, seed)
        per_sample = {}
        for s in test:
            per_sample[s] = self.score_volume(data, s, model.predict(data.raw(s)))
        wall = time.perf_counter() - t0
        metrics = aggregate(per_sample, {s: data.subset(s) for s in test})
        # records hold finite numbers only: drop the note and NaN clDice_TP (no TP at 0.5)
        metrics = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(v)}
        return {"metrics": metrics, "validation_metrics": {}, "n_parameters": int(model.n_parameters),
                "hyperparameters": describe(model), "fit_predict_seconds": wall}
