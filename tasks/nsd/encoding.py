"""Task ``nsd-encoding``: predict every vertex's fMRI response to held-out images (NSD, Algonauts 2023).

The card (:mod:`.cards`) states the task; this module builds the splits from the
``nsd-algonauts2023`` store (one group per subject, read lazily: :class:`SubjectData`),
fits one copy of a model per subject, scores with :mod:`neuroharness.metrics.encoding` and
reads submissions (:func:`read_predictions`). Models (:mod:`.baselines`, or plugins) follow::

    model.fit(train: EncodingSet, seed) -> None (or the fitted model)   # one deep copy per subject
    model.predict(data: EncodingSet) -> (n, V) float32                  # V: both hemispheres, lh then rh

(:class:`~neuroharness.tasks.nsd.data.EncodingSet`: subject, nsd_id, lazy images, fmri of the
training images (None for a scored split), hemisphere of each of the V columns.)

Splits (options ``split`` and ``subject``; see the card): per subject, ``official`` scores the
challenge's test images (their responses must be in the store), ``heldout`` the 10% of the
training images with the smallest ``sha256("nsd-encoding/heldout/<nsd_id>")``; validation is the
10% of the remaining training images with the smallest ``sha256("nsd-encoding/val/<nsd_id>")``
and models train on the rest. Only the official test split has a noise ceiling.
"""
from __future__ import annotations

import copy
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from neuroharness.errors import NeuroharnessError, SubmissionError

from ..base import Task
from ..model_utils import describe
from ..submission import NO_PICKLE, ArrayFile, check_names, write_arrays
from .cards import ALL, ENCODING, SUBJECTS
from .data import EncodingSet

DATASET = ENCODING.datasets[0]
HEMISPHERES = ("lh", "rh")
ID_COLUMNS = ["subject", "nsd_id", "split_row"]
#: Keys of the hash that orders the training images for the held-out test and the validation split.
HELDOUT_KEY = "nsd-encoding/heldout/"
VAL_KEY = "nsd-encoding/val/"
#: Fraction of the training images held out (test for split=heldout; then validation), at least MIN_SCORED.
FRACTION = 10
MIN_SCORED = 2
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
#: Order of the ROI classes in the metrics (as the challenge lists them).
ROI_ORDER = ("prf-visualrois", "floc-bodies", "floc-faces", "floc-places", "floc-words", "streams")
MEMBER = re.compile(r"(subj\d\d)_(lh|rh)")

__all__ = ["NsdEncoding", "SubjectData", "NsdData", "NsdFitted", "NsdTrainingView", "Predictions",
           "read_predictions", "write_predictions", "split_rows", "member_name"]


# -- splits ------------------------------------------------------------------------------------------
def _rank(nsd_id: np.ndarray, key: str) -> np.ndarray:
    """Positions ordering ``nsd_id`` by sha256(key + id) (ties impossible: ids are distinct)."""
    digests = [hashlib.sha256(f"{key}{int(i)}".encode()).hexdigest() for i in nsd_id]
    return np.argsort(np.array(digests), kind="stable")


def _take(n: int) -> int:
    return max(MIN_SCORED, (n + FRACTION // 2) // FRACTION)


def split_rows(nsd_id: np.ndarray, challenge_split: np.ndarray, split: str) -> dict[str, np.ndarray]:
    """Store rows (ascending) of ``train``, ``val`` and ``test`` for one subject under option ``split``.

    ``official``: test = the challenge's test rows; val = the round(10%) (at least 2) training rows
    with the smallest sha256("nsd-encoding/val/<nsd_id>"); train = the other training rows.
    ``heldout``: test = the round(10%) (at least 2) training rows with the smallest
    sha256("nsd-encoding/heldout/<nsd_id>"); then val as above among the rest; the challenge's
    test rows are not used."""
    nsd_id = np.asarray(nsd_id)
    train = np.flatnonzero(np.asarray(challenge_split) == "train")
    if split == "official":
        test = np.flatnonzero(np.asarray(challenge_split) == "test")
    else:
        order = train[_rank(nsd_id[train], HELDOUT_KEY)]
        test = np.sort(order[:_take(len(train))])
        train = np.setdiff1d(train, test)
    order = train[_rank(nsd_id[train], VAL_KEY)]
    val = np.sort(order[:_take(len(train))])
    return {"train": np.setdiff1d(train, val), "val": val, "test": test}


# -- the data view -----------------------------------------------------------------------------------
@dataclass
class SubjectData:
    """One subject's group of the store, read lazily (coordinates and small per-vertex arrays in memory)."""

    subject: str
    ds: object  # xarray.Dataset, lazily indexed (no dask)
    nsd_id: np.ndarray
    challenge_split: np.ndarray
    split_row: np.ndarray
    hemisphere: np.ndarray
    fsaverage_index: np.ndarray
    noise_ceiling: np.ndarray | None
    rois: dict  # roi class -> (labels (V,), {label: name})
    rows: dict  # train / val / test -> store rows (ascending)
    attrs: dict

    def columns(self, hemi: str) -> np.ndarray:
        return np.flatnonzero(self.hemisphere == hemi)

    def images(self, rows: np.ndarray):
        """Lazy (n, y, x, rgb) uint8 DataArray of store rows ``rows``."""
        return self.ds["images"].isel(stimulus=np.asarray(rows))

    def fmri(self, rows: np.ndarray) -> np.ndarray:
        """(n, V) float32 responses of store rows ``rows`` (read now)."""
        return np.asarray(self.ds["fmri"].isel(stimulus=np.asarray(rows)).values, dtype=np.float32)

    def encoding_set(self, split: str, with_fmri: bool) -> EncodingSet:
        rows = self.rows[split]
        return EncodingSet(subject=self.subject, nsd_id=self.nsd_id[rows].astype(np.int64), images=self.images(rows),
                           fmri=self.fmri(rows) if with_fmri else None, hemisphere=self.hemisphere.copy())

    def targets(self, split: str) -> np.ndarray:
        """Responses of a scored split; finite (an error names subject and row otherwise)."""
        rows = self.rows[split]
        y = self.fmri(rows)
        bad = ~np.isfinite(y)
        if bad.any():
            i = int(np.nonzero(bad)[0][0])
            raise NeuroharnessError(
                f"task nsd-encoding: subject {self.subject}: the store's responses of {split} row {i} (nsd_id "
                f"{self.nsd_id[rows[i]]}, challenge {self.challenge_split[rows[i]]} row {self.split_row[rows[i]]}) "
                f"are not finite ({int(bad.any(axis=1).sum())} such row(s)); the store lacks these responses "
                "(test_fmri attribute: " + repr(self.attrs.get("test_fmri")) + ")")
        return y


@dataclass
class NsdData:
    """The task's data view: the subjects scored (in order) and the options that built it."""

    store_path: str
    subject: str  # the option: one subject or "all"
    split: str
    pooling: str
    subjects: dict[str, SubjectData]


@dataclass
class NsdTrainingView:
    """What a model may see for training (``task.training_view(options)``): per subject, the training and
    validation images with their responses, as :class:`EncodingSet` (read when asked for)."""

    data: NsdData = field(repr=False)

    @property
    def subjects(self) -> list[str]:
        return list(self.data.subjects)

    def train(self, subject: str) -> EncodingSet:
        return self.data.subjects[subject].encoding_set("train", with_fmri=True)

    def val(self, subject: str) -> EncodingSet:
        return self.data.subjects[subject].encoding_set("val", with_fmri=True)


class NsdFitted:
    """One fitted model per subject. ``n_parameters`` is their sum; what each fit changed in its model
    (``describe``) is kept as attributes ``<subject>/<name>`` (they go to the record's ``fitted``)."""

    def __init__(self):
        self.models: dict = {}
        self.n_parameters = 0


def _read_subject(path, subject: str, split: str) -> SubjectData:
    """Group ``subject`` of the store at ``path`` (a local path, a URL or a ``StoreLocation``)."""
    import xarray as xr

    from neuroharness.loaders.location import as_location

    # chunks=None: lazily indexed arrays read by zarr (no dask graph of one task per image); cache=False: a
    # DataArray that was read once does not keep its values (the training images of a subject are ~5 GB)
    ds = xr.open_dataset(as_location(path).zarr_store(), engine="zarr", group=subject, consolidated=True,
                         chunks=None, cache=False)
    for v in ("nsd_id", "split", "split_row", "hemisphere", "fmri", "images"):
        if v not in ds.variables:
            raise NeuroharnessError(f"{path}: group {subject} lacks variable {v!r}; expected a store written by "
                                    "the nsd-algonauts2023 loader (prepare it again with --force)")
    nsd_id = np.asarray(ds["nsd_id"].values).astype(np.int64)
    challenge_split = np.asarray(ds["split"].values).astype(str)
    hemisphere = np.asarray(ds["hemisphere"].values).astype(str)
    rois = {}
    for name in ds.data_vars:
        if not str(name).startswith("roi_"):
            continue
        var = ds[name]
        cls = str(var.attrs.get("roi_class", str(name)[4:].replace("_", "-")))
        values = [int(v) for v in np.atleast_1d(var.attrs.get("flag_values", []))]
        names = str(var.attrs.get("flag_meanings", "")).split()
        rois[cls] = (np.asarray(var.values).astype(np.int64), dict(zip(values, names)))
    rois = dict(sorted(rois.items(), key=lambda kv: (ROI_ORDER.index(kv[0]) if kv[0] in ROI_ORDER else len(ROI_ORDER),
                                                     kv[0])))
    nc = np.asarray(ds["noise_ceiling"].values) if "noise_ceiling" in ds.data_vars else None
    rows = split_rows(nsd_id, challenge_split, split)
    return SubjectData(subject=subject, ds=ds, nsd_id=nsd_id, challenge_split=challenge_split,
                       split_row=np.asarray(ds["split_row"].values).astype(np.int64), hemisphere=hemisphere,
                       fsaverage_index=np.asarray(ds["fsaverage_index"].values).astype(np.int64)
                       if "fsaverage_index" in ds.variables else np.arange(len(hemisphere)),
                       noise_ceiling=nc, rois=rois, rows=rows, attrs=dict(ds.attrs))


def _official_check(s: SubjectData) -> None:
    """The official split needs the challenge's test responses: a clear error otherwise."""
    n_test = len(s.rows["test"])
    if n_test and s.attrs.get("test_fmri", "none") != "none":
        return
    why = ("has no challenge test images" if not n_test else
           f"has no responses for its {n_test} challenge test images (test_fmri: 'none'; source: "
           f"{s.attrs.get('source_kind', '?')}: the challenge withheld them)")
    raise NeuroharnessError(
        f"task nsd-encoding split=official: subject {s.subject} of the prepared nsd-algonauts2023 store {why}. "
        "Score on held-out training images instead: --option split=heldout (task.run_model(..., "
        "options={'split': 'heldout'})); or rebuild the store with the test responses, from the public NSD files "
        "(neuroharness datasets prepare nsd-algonauts2023 --source s3://natural-scenes-dataset --force, or a local "
        "copy of the bucket) or from a challenge release holding test_split/test_fmri/{lh,rh}_test_fmri.npy")


# -- submissions -------------------------------------------------------------------------------------
def member_name(subject: str, hemi: str) -> str:
    """Name of the array of ``subject``'s ``hemi`` in a submission: ``subj01_lh``."""
    return f"{subject}_{hemi}"


class Predictions(ArrayFile):
    """An nsd-encoding submission: one (stimuli, vertices) array per subject and hemisphere (see
    :class:`~..submission.ArrayFile`), one array in memory at a time; dtypes are judged by
    :func:`read_predictions`, which names the subject and hemisphere."""

    formats = "task nsd-encoding takes an .npz, a .zarr folder or a zipped Zarr (.zip)"
    layout = "one array per subject and hemisphere at the top level (subj01_lh, subj01_rh, ...)"


def _expected(data: NsdData, split: str) -> dict[str, tuple[str, str, tuple[int, int]]]:
    """``{member name: (subject, hemisphere, (rows, columns))}`` of a submission on ``split``."""
    out = {}
    for s, sd in data.subjects.items():
        for h in HEMISPHERES:
            out[member_name(s, h)] = (s, h, (len(sd.rows[split]), len(sd.columns(h))))
    return out


def _check_member_names(names: list[str], expected: dict, source: str, split: str, subject_option: str) -> None:
    want = ", ".join(expected)
    for name in names:
        m = MEMBER.fullmatch(name)
        if m is None:
            raise SubmissionError(f"{source}: array {name!r} is not named <subject>_<hemisphere> (e.g. subj01_lh); "
                                  f"expected exactly the arrays {want}")
        s, _ = m.groups()
        if s not in SUBJECTS:
            raise SubmissionError(f"{source}: array {name!r} names an unknown subject {s!r} (NSD subjects are "
                                  f"{', '.join(SUBJECTS)}); expected exactly the arrays {want}")
        if name not in expected:
            raise SubmissionError(f"{source}: array {name!r}: subject {s} is not scored with option "
                                  f"subject={subject_option}; expected exactly the arrays {want}")
    check_names(names, list(expected), source, split, "arrays (one per subject and hemisphere)")


def _check_header(source: str, name: str, subject: str, hemi: str, shape, dtype, want, split: str) -> None:
    where = f"{source}: array {name!r} (subject {subject}, hemisphere {hemi})"
    if dtype.hasobject:
        raise SubmissionError(f"{where} has dtype object (Python objects, which numpy stores as a pickle); "
                              f"{NO_PICKLE}: expected float32 or float64")
    if dtype.newbyteorder("=") not in FLOAT_DTYPES and dtype not in FLOAT_DTYPES:
        raise SubmissionError(f"{where} has dtype {dtype}; expected float32 or float64")
    if tuple(shape) != tuple(want):
        raise SubmissionError(f"{where} has shape {tuple(shape)}; expected {tuple(want)}: one row per {split} "
                              f"stimulus of {subject} in the template's order, one column per {hemi} vertex of "
                              f"{subject} in store order")


def _check_values(source: str, name: str, sd: SubjectData, hemi: str, split: str, a: np.ndarray) -> None:
    bad = ~np.isfinite(a)
    if bad.any():
        i, j = (int(x[0]) for x in np.nonzero(bad))
        row = sd.rows[split][i]
        raise SubmissionError(
            f"{source}: array {name!r} (subject {sd.subject}, hemisphere {hemi}) row {i} (nsd_id {sd.nsd_id[row]}, "
            f"split_row {sd.split_row[row]}), column {j} (vertex {j} of {hemi}, fsaverage vertex "
            f"{sd.fsaverage_index[sd.columns(hemi)[j]]}) is {float(a[i, j])}; expected finite values "
            f"({int(bad.sum())} NaN/inf value(s) in this array)")


def read_predictions(predictions, data: NsdData, split: str, subject_option: str = "") -> Predictions:
    """Open a submission (path or ``{name: array}``) and check, from headers only, its array names
    (``<subject>_<hemisphere>``, exactly those scored), dtypes (float32/float64) and shapes
    ((stimuli of the split, vertices of the hemisphere)); values are checked (finite) as each array is
    loaded for scoring."""
    p = Predictions(predictions)
    try:
        expected = _expected(data, split)
        _check_member_names(p.names, expected, p.name, split, subject_option or data.subject)
        for name, (s, h, want) in expected.items():
            _check_header(p.name, name, s, h, *p.header(name), want, split)
    except BaseException:
        p.close()
        raise
    return p


def write_predictions(path, predictions: dict[str, np.ndarray]) -> Path:
    """Write a submission: ``{"subj01_lh": (n, V_lh) array, "subj01_rh": ..., ...}`` as ``.npz`` or a ``.zarr``
    folder (atomically). Rows follow the template's rows of the subject, columns the subject's vertices of
    that hemisphere. Example::

        write_predictions("preds.npz", {"subj01_lh": lh, "subj01_rh": rh})
        neuroharness evaluate nsd-encoding preds.npz --option subject=subj01
    """
    path = Path(path)
    arrays = {str(k): np.asarray(v) for k, v in predictions.items()}
    for name, a in arrays.items():
        if a.ndim != 2 or a.dtype not in FLOAT_DTYPES:
            raise SubmissionError(f"{path}: array {name!r} has shape {a.shape} and dtype {a.dtype}; expected a "
                                  "(stimuli, vertices) float32 or float64 array")
    return write_arrays(path, arrays, lambda a: (min(len(a), 64) or 1, a.shape[1] or 1))


# -- the task ----------------------------------------------------------------------------------------
class NsdEncoding(Task):
    """Models (see the module docstring): ``fit(train: EncodingSet, seed)``, ``predict(data: EncodingSet) ->
    (n, V)``, one deep copy fitted per subject. ``training_view(options)`` is an :class:`NsdTrainingView`.
    Predictions are ``{"subj01_lh": (n, V_lh), ...}`` (or a file: :func:`read_predictions`).
    :meth:`vertex_scores` gives the per-vertex values (NaN where r is undefined)."""

    card = ENCODING
    cache_size = 1

    def _subjects(self, options) -> list[str]:
        return list(SUBJECTS) if options["subject"] == ALL else [options["subject"]]

    def dataset_parts(self, options) -> dict[str, dict[str, str]]:
        from neuroharness.loaders import get_loader

        parts = get_loader(DATASET.name).part_checksums(DATASET.version)
        subjects = self._subjects(options)
        missing = [s for s in subjects if s not in parts]
        if missing:
            raise NeuroharnessError(self._missing_subjects(missing, sorted(parts), subjects))
        return {DATASET.name: {s: parts[s] for s in subjects}}

    def _missing_subjects(self, missing, held, wanted) -> str:
        from neuroharness.loaders import get_loader

        path = get_loader(DATASET.name).store_location(DATASET.version)
        needed = " ".join(sorted(set(held) | set(wanted)))
        return (f"task nsd-encoding: the prepared nsd-algonauts2023 store {path} holds "
                f"{', '.join(held) or 'no subject'}, not {', '.join(missing)}; prepare it with the subjects needed: "
                f"neuroharness datasets prepare nsd-algonauts2023 --source DIR --only {needed} --force")

    def load(self, options) -> NsdData:
        """Open the subjects' groups (preparing the store if needed), build the split and check it."""
        from neuroharness.loaders import get_loader

        path = get_loader(DATASET.name).locate(DATASET.version)  # prepares a store missing from a local cache
        subjects = self._subjects(options)
        held = list(path.read_attrs().get("subjects") or [g for g in path.groups() if g in SUBJECTS])
        missing = [s for s in subjects if s not in held]
        if missing:
            raise NeuroharnessError(self._missing_subjects(missing, held, subjects))
        data = NsdData(str(path), options["subject"], options["split"], options["pooling"],
                       {s: _read_subject(path, s, options["split"]) for s in subjects})
        for sd in data.subjects.values():
            if options["split"] == "official":
                _official_check(sd)
            if len(sd.rows["train"]) < MIN_SCORED:
                raise NeuroharnessError(f"task nsd-encoding: subject {sd.subject} has {len(sd.rows['train'])} "
                                        "training image(s) left after the held-out and validation images; a fuller "
                                        "store is needed")
        return data

    def describe_data(self, data: NsdData) -> str:
        return f"{data.store_path}: " + ", ".join(
            f"{s} ({len(d.rows['train'])} train, {len(d.rows['val'])} val, {len(d.rows['test'])} test)"
            for s, d in data.subjects.items())

    def ids(self, data: NsdData, split: str) -> pd.DataFrame:
        """The scored stimuli of ``split`` (or 'train'): subject, nsd_id, split_row (the row in the challenge
        split the image comes from: test rows for split=official, training rows for heldout), subject by
        subject, in store order."""
        if split not in ("train", "val", "test"):
            raise SubmissionError(f"split {split!r}: expected 'test', 'val' or 'train'")
        frames = [pd.DataFrame({"subject": np.full(len(d.rows[split]), s, dtype=object),
                                "nsd_id": d.nsd_id[d.rows[split]].astype(np.int64),
                                "split_row": d.split_row[d.rows[split]].astype(np.int64)})
                  for s, d in data.subjects.items()]
        return pd.concat(frames, ignore_index=True)[ID_COLUMNS]

    def training_view_of(self, data: NsdData) -> NsdTrainingView:
        """:class:`NsdTrainingView`: per subject ``train(subject)`` and ``val(subject)`` :class:`EncodingSet`
        with responses; the test responses are never reachable through it."""
        return NsdTrainingView(data)

    def targets(self, data: NsdData, split: str):
        """Refused: the targets are (stimulus, vertex) arrays, not a table; ``training_view()`` reads them."""
        raise SubmissionError(f"task {self.name}: the targets are (stimulus, vertex) response arrays, not a table, "
                              f"so `tasks template --split {split}` cannot write them; read the images and responses "
                              f"of train and val in Python: `view = get_task({self.name!r}).training_view(options)`, "
                              f"then `view.train('subj01')`, `view.val('subj01')` (EncodingSet: images, fmri)")

    def fit(self, model, data: NsdData, seed: int) -> NsdFitted:
        """Fit a deep copy of ``model`` on each subject's training images (train split only)."""
        view = self.training_view_of(data)
        built = describe(model)
        fitted = NsdFitted()
        for s in view.subjects:
            m = copy.deepcopy(model)
            train = view.train(s)
            out = m.fit(train, seed)
            m = m if out is None else out
            del train
            fitted.models[s] = m
            fitted.n_parameters += int(getattr(m, "n_parameters", 0) or 0)
            for k, v in describe(m).items():
                if k not in built or built[k] != v:
                    setattr(fitted, f"{s}/{k}", v)
        return fitted

    def predict(self, model: NsdFitted, data: NsdData, split: str) -> dict[str, np.ndarray]:
        """``{"subj01_lh": (n, V_lh), ...}`` of the fitted per-subject models on ``split``."""
        out = {}
        for s, sd in data.subjects.items():
            pred = self._model_prediction(model, sd, split)
            for h in HEMISPHERES:
                out[member_name(s, h)] = pred[:, sd.columns(h)]
        return out

    def _model_prediction(self, model: NsdFitted, sd: SubjectData, split: str) -> np.ndarray:
        m = model.models[sd.subject]
        pred = m.predict(sd.encoding_set(split, with_fmri=False))
        want = (len(sd.rows[split]), len(sd.hemisphere))
        what = f"task nsd-encoding: model {type(m).__name__} predicted for subject {sd.subject} ({split} split)"
        shape = tuple(getattr(pred, "shape", ()))
        if shape != want:
            raise NeuroharnessError(f"{what} an array of shape {shape}; expected {want} (stimuli, vertices lh then rh)")
        pred = np.asarray(pred)
        if pred.dtype.kind not in "fiu":
            raise NeuroharnessError(f"{what} dtype {pred.dtype}; expected float32")
        bad = ~np.isfinite(pred)
        if bad.any():
            i, j = (int(x[0]) for x in np.nonzero(bad))
            raise NeuroharnessError(f"{what} {int(bad.sum())} NaN/inf value(s), first at row {i}, column {j}")
        return pred

    # -- scoring -----------------------------------------------------------------------------------
    def _groups(self, data: NsdData, split: str, prediction) -> tuple[dict, dict]:
        """Per-vertex scores and ROI labels of every (subject, hemisphere); ``prediction(sd)`` gives
        ``{hemi: (n, V_h) array}`` of one subject (one subject in memory at a time)."""
        from neuroharness.metrics.encoding import vertex_scores

        groups, rois = {}, {}
        use_nc = split == "test" and data.split == "official"
        for s, sd in data.subjects.items():
            pred = prediction(sd)
            target = sd.targets(split)
            for h in HEMISPHERES:
                cols = sd.columns(h)
                nc = sd.noise_ceiling[cols] if use_nc and sd.noise_ceiling is not None else None
                groups[(s, h)] = vertex_scores(pred[h], target[:, cols], nc)
                rois[(s, h)] = {c: (labels[cols], names) for c, (labels, names) in sd.rois.items()}
            del pred, target
        return groups, rois

    def _summary(self, data: NsdData, split: str, prediction) -> dict[str, float]:
        """Pooled metrics (finite numbers only, what records hold). The notes of
        :func:`~neuroharness.metrics.encoding.summarize` go to the ``neuroharness`` logger: that the
        noise-normalized score is unavailable as a warning on the test split (shown even when quiet),
        the rest as status lines."""
        import logging

        from neuroharness.metrics.encoding import NO_NOISE_CEILING, summarize
        from neuroharness.progress import status

        groups, rois = self._groups(data, split, prediction)
        summary = summarize(groups, data.pooling, rois)
        for note in summary.notes:
            if note == NO_NOISE_CEILING and split == "test":
                logging.getLogger("neuroharness").warning(f"[nsd-encoding] split={data.split}, test: {note}")
            else:
                status(f"[nsd-encoding] {split}: {note}")
        return summary.metrics

    def score(self, data: NsdData, split: str, predictions) -> dict[str, float]:
        """Metrics of ``predictions`` (``{name: array}`` or a :class:`Predictions`) on ``split``: see
        :func:`neuroharness.metrics.encoding.summarize` (finite numbers only)."""
        own = not isinstance(predictions, Predictions)
        p = read_predictions(predictions, data, split) if own else predictions
        try:
            return self._summary(data, split, lambda sd: self._submitted(p, sd, split))
        finally:
            p.close()

    @staticmethod
    def _submitted(p: Predictions, sd: SubjectData, split: str) -> dict[str, np.ndarray]:
        out = {}
        for h in HEMISPHERES:
            name = member_name(sd.subject, h)
            a = p.load(name)
            _check_header(p.name, name, sd.subject, h, a.shape, a.dtype, (len(sd.rows[split]), len(sd.columns(h))),
                          split)
            _check_values(p.name, name, sd, h, split, a)
            out[h] = a
        return out

    def score_model(self, model: NsdFitted, data: NsdData, split: str) -> dict[str, float]:
        """Predict and score one subject at a time."""
        def prediction(sd):
            pred = self._model_prediction(model, sd, split)
            return {h: pred[:, sd.columns(h)] for h in HEMISPHERES}

        return self._summary(data, split, prediction)

    def read_submission(self, predictions, data: NsdData, split: str) -> Predictions:
        """Open a submission lazily and check its names, dtypes and shapes (:func:`read_predictions`)."""
        return read_predictions(predictions, data, split, data.subject)

    def vertex_scores(self, predictions, split: str = "test", options=None) -> dict:
        """Per-vertex results ``{(subject, hemisphere): VertexScores}`` of a submission (r, r2 and, on the
        official test split, nc_score; NaN where r is undefined), e.g. to map them on the surface with
        the store's ``fsaverage_index``."""
        split = self.check_split(split)
        data = self.data(options)
        p = self.read_submission(predictions, data, split)
        try:
            return self._groups(data, split, lambda sd: self._submitted(p, sd, split))[0]
        finally:
            p.close()
