"""The ``nsd-algonauts2023`` loader: a source (challenge release or NSD files) -> one store group per subject.

Nothing is ever downloaded by default: NSD's terms forbid redistribution, so
every store is prepared from a copy the user obtained (``--source``). Two layouts:

- the Algonauts 2023 challenge release (:mod:`.challenge`): a folder holding
  ``subj01/`` ... ``subj08/``, or one ``subjXX/`` folder;
- the NSD files (:mod:`.bucket`): a folder or ``s3://`` URL with
  ``nsddata/experiments/nsd/nsd_expdesign.mat``; the challenge's training and
  test sets are rebuilt with the devkit's recipe.
"""
from __future__ import annotations

import os
from pathlib import Path

import xarray as xr
import zarr

from neuroharness.errors import DataFormatError, NeuroharnessError
from neuroharness.progress import progress_bar, status

from ..base import TreeLoader, root_attrs
from . import cards
from .challenge import subject_from_challenge
from .store import ROI_CLASSES, SUBJECTS, roi_variable, write_subject

NSD_DESIGN = "nsddata/experiments/nsd/nsd_expdesign.mat"
CHALLENGE = "challenge release"
NSD_FILES = "NSD files"

HOW_TO_GET = (
    "nsd-algonauts2023 has no download: the NSD terms forbid redistribution, so the harness never fetches or "
    "mirrors it. To obtain it: (1) accept the NSD Data Access Agreement (linked from the NSD manual, "
    "https://cvnlab.slite.page/p/dC~rBTjqjb/How-to-get-the-data); then either (2a) the Algonauts 2023 challenge "
    "release: request it with the Google form linked from the README of https://github.com/gifale95/algonauts_2023, "
    "unpack it and run `neuroharness datasets prepare nsd-algonauts2023 --source DIR` (DIR holding subj01..subj08, "
    "or one subjXX folder; --only subj01 ... selects subjects); or (2b) the public NSD files, from which the "
    "challenge's test responses and noise ceilings are rebuilt: `aws s3 sync --no-sign-request "
    "s3://natural-scenes-dataset DIR --exclude '*' --include 'nsddata/experiments/nsd/nsd_expdesign.mat' --include "
    "'nsddata_betas/ppdata/subj01/fsaverage/betas_fithrf_GLMdenoise_RR/*' --include 'nsddata/freesurfer/*/label/*' "
    "--include 'nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5'` then --source DIR, or --source "
    "s3://natural-scenes-dataset to read the bucket directly. Building from NSD files also needs the devkit's "
    "lh/rh.nsdgeneralRSC.mgz (code/01_challenge_data_preparation/ of the devkit): copy them to "
    "nsddata/freesurfer/fsaverage/label/ or point $NEUROHARNESS_NSD_RSC at their folder. To try the harness offline: "
    "python scripts/make_nsd_challenge_fixture.py DIR (synthetic subjects in the challenge layout) or "
    "python scripts/make_nsd_bucket_fixture.py DIR (the NSD-files layout), then --source DIR"
)


class SourceFiles(dict):
    """``{raw name: local path}`` as :meth:`NsdAlgonautsLoader.fetch` returns it (what ``raw_sha256`` digests),
    plus the plan :meth:`~NsdAlgonautsLoader.write` follows: ``kind`` (:data:`CHALLENGE` or
    :data:`NSD_FILES`), ``root`` (a path, or the URL of the NSD files) and ``subjects`` (sorted)."""

    def __init__(self, files, kind: str, root, subjects: list[str]):
        super().__init__(files)
        self.kind, self.root, self.subjects = kind, root, list(subjects)


def check_subject_names(names) -> list[str]:
    """``names`` sorted, each one of subj01..subj08 (an error names the first other one)."""
    names = sorted(set(names))
    bad = [n for n in names if n not in SUBJECTS]
    if bad:
        raise DataFormatError(f"nsd-algonauts2023: unknown subject {bad[0]!r} (--only); expected some of "
                              f"{', '.join(SUBJECTS)}")
    return names


def challenge_subjects(path: Path, only: list[str] | None = None) -> dict[str, Path]:
    """``{subject: folder}`` of a challenge release root (``subjXX/`` folders) or of one ``subjXX`` folder."""
    if (path / "training_split").is_dir():
        if path.name not in SUBJECTS:
            raise DataFormatError(f"{path}: a subject folder of the challenge release must be named subj01..subj08 "
                                  f"(the store names its group after it), not {path.name!r}; rename it or give "
                                  "its parent folder")
        found = {path.name: path}
    elif path.is_dir():
        found = {d.name: d for d in sorted(path.iterdir()) if d.name in SUBJECTS and d.is_dir()}
        if not found:
            raise DataFormatError(f"--source {path}: neither the Algonauts 2023 challenge release (subj01/ .. "
                                  "subj08/ folders, or one subjXX folder with training_split/) nor the NSD files "
                                  f"({NSD_DESIGN}); {HOW_TO_GET}")
    else:
        raise DataFormatError(f"--source {path}: not a folder; expected the Algonauts 2023 challenge release "
                              f"(subj01/ .. subj08/) or the NSD files ({NSD_DESIGN})")
    if only is not None:
        missing = [s for s in check_subject_names(only) if s not in found]
        if missing:
            raise DataFormatError(f"--source {path}: no folder for {', '.join(missing)} (--only); it holds "
                                  f"{', '.join(found)}")
        found = {s: found[s] for s in sorted(only)}
    return found


def write_subject_part(target: str, kind: str, source, subject: str, progress=None, scheduler=None) -> None:
    """Write one subject's group into the (existing) store at ``target`` from the challenge release folder of
    that subject or the NSD files' root (``kind``). One part of :meth:`NsdAlgonautsLoader.write`, which may run
    on a dask worker (so it opens the store and reads the source itself). ``progress``: a bar counting images;
    ``scheduler``: NSD files only, the sessions are read on that dask cluster."""
    if kind == NSD_FILES:
        from . import bucket

        arrays = bucket.subject_from_nsd(source, subject, scheduler=scheduler)
    else:
        arrays = subject_from_challenge(source, subject)
    status(f"[nsd-algonauts2023] {subject}: {len(arrays.nsd_id)} stimuli")
    write_subject(zarr.open_group(target, mode="r+", zarr_format=2), arrays, progress=progress)


class NsdAlgonautsLoader(TreeLoader):
    card = cards.NSD

    def fetch(self, source, only=None):
        if source is None:
            raise DataFormatError(HOW_TO_GET)
        text = str(source)
        if text.startswith("s3://") or (Path(text).expanduser() / NSD_DESIGN).is_file():
            return self._fetch_nsd(text if text.startswith("s3://") else Path(text).expanduser(), only)
        if "://" in text:
            raise DataFormatError(f"--source {text}: only local folders and s3:// URLs of the NSD files are read; "
                                  f"{HOW_TO_GET}")
        path = Path(text).expanduser()
        found = challenge_subjects(path, only)
        return SourceFiles(found, CHALLENGE, path, list(found)), f"Algonauts 2023 challenge release {path}"

    def _fetch_nsd(self, root, only):
        from . import bucket  # the NSD-files reader (nibabel, h5py, fsspec) is imported only for that layout

        subjects = check_subject_names(only) if only is not None else (
            list(bucket.subjects_in(root)) if hasattr(bucket, "subjects_in") else list(SUBJECTS))
        if hasattr(bucket, "raw_files"):
            files = bucket.raw_files(root, subjects)
        else:
            design = None if isinstance(root, str) else Path(root) / NSD_DESIGN
            files = {} if design is None else {"nsd_expdesign.mat": design}
        return SourceFiles(files, NSD_FILES, root, subjects), f"NSD files {root}"

    def write(self, files, target):
        kind = getattr(files, "kind", CHALLENGE)
        subjects = getattr(files, "subjects", None) or sorted(files)
        # every subject's inputs are checked before the first byte is written
        if kind == NSD_FILES:
            from . import bucket

            # the rebuild itself (minutes, scratch files as large as the responses) is one part per subject
            checks = [bucket.check_nsd_subject(files.root, s) for s in subjects]
            sizes = [c["n_train"] + c["n_test"] for c in checks]
            parts = [(str(target), kind, files.root, s) for s in subjects]
            shared = [] if isinstance(files.root, str) and "://" in files.root else [files.root]
        else:
            sizes = [len(subject_from_challenge(files[s], s).nsd_id) for s in subjects]  # lazy: memmaps, paths
            parts = [(str(target), kind, files[s], s) for s in subjects]
            shared = [files[s] for s in subjects]
        root = zarr.open_group(str(target), mode="w", zarr_format=2)
        if kind == NSD_FILES and self.scheduler is not None:
            # the parts on the cluster are the sessions (reading and z-scoring each betas file is the heavy
            # work, and one subject is the usual build); the subjects are written here one after another
            with progress_bar(total=sum(sizes), desc=f"[{self.name}] images", unit="image") as bar:
                for args in parts:
                    write_subject_part(*args, progress=bar, scheduler=self.scheduler)
        else:
            self.write_parts(write_subject_part, parts, desc=f"[{self.name}] images", unit="image", sizes=sizes,
                             shared=[target, *shared])
        root.attrs.update({"subjects": list(subjects), "source_kind": kind})

    def summary(self, tree):
        lines = [f"{'subject':<8} {'train':>6} {'test':>5} {'lh':>7} {'rh':>7}  {'test fMRI':<9} {'NC':<3}  ROI classes"]
        for name in sorted(tree.children):
            ds = tree[name].to_dataset(inherit=False)
            split = ds["split"].values.astype(str)
            rois = [c for c in ROI_CLASSES if roi_variable(c) in ds]
            lines.append(f"{name:<8} {int((split == 'train').sum()):>6} {int((split == 'test').sum()):>5} "
                         f"{ds.attrs.get('vertices_lh', 0):>7,} {ds.attrs.get('vertices_rh', 0):>7,}  "
                         f"{'no' if ds.attrs.get('test_fmri', 'none') == 'none' else 'yes':<9} "
                         f"{'yes' if 'noise_ceiling' in ds else 'no':<3}  {' '.join(rois) or 'none'}")
        lines.append(f"source: {tree.attrs.get('source_kind', '?')}")
        if any(tree[n].attrs.get("test_fmri", "none") == "none" for n in tree.children):
            lines.append("test fMRI 'no': the test images' responses are NaN (the challenge withheld them; "
                         "prepare from the NSD files to rebuild them)")
        return lines


def loader() -> NsdAlgonautsLoader:
    """The registered ``nsd-algonauts2023`` loader (one instance)."""
    from .. import get_loader

    return get_loader("nsd-algonauts2023")


def store_path(version: str | None = None) -> Path:
    """Local path of the prepared store (it may not exist yet); a remote cache has none: see :func:`store_location`."""
    return loader().store_path(version)


def store_location(version: str | None = None):
    """Where the store is (or would be): a :class:`~neuroharness.loaders.location.StoreLocation`,
    local or below a remote ``$NEUROHARNESS_HOME``."""
    return loader().store_location(version)


def subjects(version: str | None = None) -> list[str]:
    """Subjects held by the prepared store (read from its metadata)."""
    return list(root_attrs(loader().locate(version)).get("subjects", []))


def open_subject(subject: str, version: str | None = None, source: os.PathLike | str | None = None) -> xr.Dataset:
    """One subject's group of the store as a lazy ``xarray.Dataset`` (preparing the store from ``source`` if needed)."""
    path = loader().locate(version, source)
    held = list(root_attrs(path).get("subjects", []))
    if subject not in held:
        raise NeuroharnessError(
            f"subject {subject!r} is not in the prepared nsd-algonauts2023 store {path}, which holds "
            f"{', '.join(held) or 'no subject'}; rebuild it with the subjects you need: neuroharness datasets prepare "
            f"nsd-algonauts2023 --source DIR --only {' '.join(sorted(set(held) | {subject}))} --force")
    return path.open_dataset(group=subject, chunks={})
