"""Synthetic subjects in the exact layout of the NSD bucket (``s3://natural-scenes-dataset``), for tests and benchmarks.

NSD's terms forbid redistribution, so nothing here comes from NSD: every number is drawn from a seeded
generator. Names, folders, dtypes and array shapes follow the real files; surfaces, sessions and images are small.

Files written under ``OUT`` (the paths the Algonauts 2023 preparation script reads)::

    nsddata/experiments/nsd/nsd_expdesign.mat
        masterordering (1, 30000) int32, 1-based slots 1..10000 (every slot three times: 10,000 images x 3
        presentations), subjectim (8, 10000) int32, 1-based NSD ids 1..73000 (columns 0..999: the shared
        images, the same for every subject), sharedix (1, 1000) int32 = subjectim[0, :1000]
    nsddata/freesurfer/fsaverage/label/{lh,rh}.nsdgeneral.mgz          (V, 1, 1) float32, 0/1
    nsddata/freesurfer/fsaverage/label/{lh,rh}.nsdgeneralRSC.mgz       (V, 1, 1) float32, 0/1 (skipped with
        rsc=False; in reality it ships with the devkit, which tells users to copy it there)
    nsddata_betas/ppdata/subjXX/fsaverage/betas_fithrf_GLMdenoise_RR/{lh,rh}.betas_sessionNN.mgh
        (V, 1, 1, T) float32 (big-endian, as MGH stores it), one file per completed session (40, 40, 32, 30,
        40, 32, 40, 30 sessions for subj01..subj08), T trials each (750 in NSD)
    nsddata_betas/ppdata/subjXX/fsaverage/betas_fithrf_GLMdenoise_RR/{lh,rh}.ncsnr.mgh   (V, 1, 1) float32
    nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5
        imgBrick (73000, S, S, 3) uint8, chunks (1, S, S, 3); only the images some fixture subject sees
        are written (the rest are unwritten chunks, read as zeros), so the file stays small

``V`` is the surface size (163,842 per hemisphere on fsaverage; small here, different for lh and rh so that
a hemisphere mix-up shows).

Design. The first ``40 * T`` entries of ``masterordering`` hold all three presentations of ``40 * T / 3``
slots (so a subject with 40 sessions sees each of them three times, as in NSD); the rest of the 10,000 slots
follow. Each used slot gets two gaps (half of the slots about a session in all, the others up to 24 sessions)
and a first-presentation time that keeps all three within the 40 sessions; presentations are put in time
order and cut into sessions of T trials. A third of the used slots (at most 1000) are shared (slot < 1000).
With T = 750 every slot is used, as in NSD (subj01 then has 9,581 training and 419 test images; NSD's:
9,841 and 159).
The generator draws designs from ``seed`` upwards until every rule of the challenge split is exercised for
40-, 32- and 30-session subjects: test images with 1, 2 and 3 repeats (3 only for 40 sessions), shared images
kept (40 sessions) and dropped (32/30 sessions) from the test set, training images also shown in the test
sessions (their trials there are not averaged), and at least one image repeated within a session.

Responses. Each image has a feature vector (mean of each colour channel over a 2 x 2 grid, standardized);
vertex ``v`` has weights ``w_v``, a signal scale ``s_v`` ~ U(0.3, 1.5) and a noise scale ``n_v`` ~ U(0.5, 1.5).
A trial's beta is ``offset[session, v] + gain[session, v] * (s_v * signal(image) + n_v * noise)`` with
``signal`` of unit variance over images, so z-scoring within a session matters and the noise-ceiling SNR is
``ncsnr_v = s_v / n_v``, which is what ``ncsnr.mgh`` holds. Special vertices, the same for every subject:
one masked lh vertex constant within session 2 (zero variance), NaN betas at a few vertices outside the mask
(every subject: they must be ignored), and for subj06/subj08 (the subjects whose NaN vertices the devkit
removes) NaN in one trial at two masked vertices per hemisphere (their ncsnr is NaN too).

Usage::

    python scripts/make_nsd_bucket_fixture.py OUT [--subjects subj01,subj03] [--trials 12] [--vertices 500,460]
                                                  [--image-size 8] [--seed 0] [--no-rsc]

API: :func:`write_bucket` (returns a :class:`Bucket` with the paths and the design), :func:`make_design`,
:data:`SESSIONS`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

SUBJECTS = tuple(f"subj{i:02d}" for i in range(1, 9))
SESSIONS = dict(zip(SUBJECTS, (40, 40, 32, 30, 40, 32, 40, 30)))
FULL = ("subj01", "subj02", "subj05", "subj07")
NAN_SUBJECTS = ("subj06", "subj08")
N_SLOTS, N_PRESENTATIONS, N_SHARED, N_IMAGES = 10_000, 30_000, 1_000, 73_000
MAX_SESSIONS, TEST_SESSIONS = 40, 3

EXPDESIGN = "nsddata/experiments/nsd/nsd_expdesign.mat"
LABELS = "nsddata/freesurfer/fsaverage/label"
BETAS = "nsddata_betas/ppdata/{subject}/fsaverage/betas_fithrf_GLMdenoise_RR"
STIMULI = "nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5"
HEMIS = ("lh", "rh")

CONSTANT_SESSION = 2  # 1-based session where one masked lh vertex is constant
N_FEATURES = 12


class Bucket:
    """What :func:`write_bucket` wrote: the root, the design (0-based) and per-subject generative parameters.

    (A plain class: the tests import this script by path, without a module entry that dataclasses need.)
    """

    def __init__(self, root: Path, trials: int, vertices: dict, masterordering: np.ndarray, subjectim: np.ndarray,
                 mask: dict, constant_vertex: int):
        self.root, self.trials, self.vertices = root, trials, vertices
        self.masterordering = masterordering  # (30000,) 0-based slots
        self.subjectim = subjectim  # (8, 10000) 0-based NSD ids
        self.mask = mask  # hemi -> (V,) bool, nsdgeneral | RSC
        self.constant_vertex = constant_vertex  # lh fsaverage index constant within CONSTANT_SESSION
        self.nan_vertices: dict = {}  # subject -> hemi -> fsaverage indices with a NaN trial
        self.ncsnr: dict = {}  # subject -> hemi -> (V,) float32

    def betas_path(self, subject: str, hemi: str, session: int) -> Path:
        return self.root / BETAS.format(subject=subject) / f"{hemi}.betas_session{session:02d}.mgh"


# -- design ---------------------------------------------------------------------------------------
def _draw_design(trials: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    shown = MAX_SESSIONS * trials
    n_used = -(-shown // 3)
    n_shared = min(N_SHARED, n_used // 3)
    used = np.concatenate([rng.choice(N_SHARED, n_shared, replace=False),
                           N_SHARED + rng.choice(N_SLOTS - N_SHARED, n_used - n_shared, replace=False)])
    close = rng.random(n_used) < 1 / 2
    gaps = np.where(close[:, None], rng.uniform(0, 1.0, (n_used, 2)), rng.uniform(0, 12, (n_used, 2)))
    first = rng.uniform(0, MAX_SESSIONS - gaps.sum(1))  # every presentation within the 40 sessions
    times = np.concatenate([first, first + gaps[:, 0], first + gaps.sum(1)])
    slots = np.tile(used, 3)
    order = np.argsort(times, kind="stable")
    rest = np.setdiff1d(np.arange(N_SLOTS), used)
    tail = rng.permutation(np.repeat(rest, 3))
    masterordering = np.concatenate([slots[order], tail])[:N_PRESENTATIONS]
    # every subject sees the same 1000 shared images first, then 9000 of its own
    ids = rng.permutation(N_IMAGES)
    subjectim = np.empty((8, N_SLOTS), dtype=np.int64)
    subjectim[:, :N_SHARED] = ids[:N_SHARED]
    own = ids[N_SHARED:].reshape(8, N_SLOTS - N_SHARED)
    subjectim[:, N_SHARED:] = own
    return masterordering.astype(np.int64), subjectim


def _split_facts(masterordering, subjectim, subject: str, trials: int) -> dict:
    """Counts of what the challenge rule does to ``subject`` (used to accept a design); plain numpy."""
    n_sessions = SESSIONS[subject]
    row = SUBJECTS.index(subject)
    ids = subjectim[row, masterordering[: n_sessions * trials]]
    n_train = (n_sessions - TEST_SESSIONS) * trials
    train, last = ids[:n_train], ids[n_train:]
    train_set = set(train.tolist())
    shared = set(subjectim[0, :N_SHARED].tolist())
    counts = {}
    for i in last.tolist():
        counts[i] = counts.get(i, 0) + 1
    fresh = {i: c for i, c in counts.items() if i not in train_set}
    keep_shared = {i for i, c in fresh.items() if i in shared and c == 3 and subject in FULL}
    test = {i: c for i, c in fresh.items() if i not in shared or i in keep_shared}
    sessions = np.arange(len(ids)) // trials
    within = any(len(set(sessions[ids == i].tolist())) < int((ids == i).sum()) for i in np.unique(ids))
    return {
        "reps": {r: sum(1 for c in test.values() if c == r) for r in (1, 2, 3)},
        "shared_kept": len(keep_shared),
        "shared_dropped": sum(1 for i in fresh if i in shared and i not in keep_shared),
        "train_in_test_sessions": len(train_set & set(last.tolist())),
        "within_session_repeat": within,
        "n_train": len(train_set),
        "n_test": len(test),
    }


def _design_ok(masterordering, subjectim, trials: int) -> bool:
    f40 = _split_facts(masterordering, subjectim, "subj01", trials)
    f32 = _split_facts(masterordering, subjectim, "subj03", trials)
    f30 = _split_facts(masterordering, subjectim, "subj04", trials)
    return (f40["reps"][3] > 0 and f40["shared_kept"] > 0 and f40["train_in_test_sessions"] > 0
            and all(f["reps"][1] > 0 and f["reps"][2] > 0 and f["shared_dropped"] > 0
                    and f["train_in_test_sessions"] > 0 for f in (f32, f30))
            and f40["within_session_repeat"])


def make_design(trials: int, seed: int = 0, max_tries: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """``(masterordering (30000,), subjectim (8, 10000))``, both 0-based, for sessions of ``trials`` trials.

    Draws from ``seed``, ``seed + 1``, ... until every rule of the challenge split is exercised (see the module
    docstring). ``trials`` must be at least 6 so that three test sessions can hold all the cases.
    """
    if trials < 6:
        raise ValueError(f"trials={trials}: need at least 6 trials per session")
    for k in range(max_tries):
        mo, si = _draw_design(trials, np.random.default_rng([seed, k]))
        if _design_ok(mo, si, trials):
            return mo, si
    raise RuntimeError(f"no design exercising every split rule in {max_tries} draws (trials={trials}, seed={seed})")


# -- writers --------------------------------------------------------------------------------------
def _save_mgh(path: Path, data: np.ndarray) -> None:
    import nibabel as nib

    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.MGHImage(np.asarray(data, dtype=np.float32), np.eye(4)), str(path))


def _image(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth random RGB image (a coarse random field, upsampled, plus a little pixel noise)."""
    coarse = rng.integers(0, 256, (4, 4, 3)).astype(np.float64)
    up = np.kron(coarse, np.ones((-(-size // 4), -(-size // 4), 1)))[:size, :size]
    return np.clip(up + rng.normal(0, 12, up.shape), 0, 255).astype(np.uint8)


def image_features(images: np.ndarray) -> np.ndarray:
    """(n, 12) mean of each colour channel over a 2 x 2 grid of each image (what the responses depend on)."""
    n, h, w, _ = images.shape
    hh, hw = h // 2, w // 2
    parts = [images[:, y0:y0 + hh, x0:x0 + hw].mean(axis=(1, 2)) for y0 in (0, hh) for x0 in (0, hw)]
    return np.concatenate(parts, axis=1)


def write_bucket(root, subjects=("subj01",), *, trials: int = 12, vertices=(500, 460), image_size: int = 8,
                 seed: int = 0, rsc: bool = True, mask_fraction: float = 0.35) -> Bucket:
    """Write the NSD-bucket files of ``subjects`` under ``root``; return a :class:`Bucket`.

    ``trials`` per session (750 in NSD), ``vertices`` = (lh, rh) surface sizes, ``image_size`` the side of the
    square images, ``rsc`` whether to put the devkit's RSC label where the devkit script reads it,
    ``mask_fraction`` the share of vertices in nsdgeneral.
    """
    import h5py
    from scipy.io import savemat

    root = Path(root)
    unknown = [s for s in subjects if s not in SESSIONS]
    if unknown:
        raise ValueError(f"unknown subjects {unknown}; valid: {', '.join(SUBJECTS)}")
    vertices = dict(zip(HEMIS, (int(v) for v in vertices)))
    masterordering, subjectim = make_design(trials, seed)
    rng = np.random.default_rng([seed, 7919])

    path = root / EXPDESIGN
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(path, {"masterordering": (masterordering + 1).astype(np.int32)[None, :],
                   "subjectim": (subjectim + 1).astype(np.int32),
                   "sharedix": (subjectim[0, :N_SHARED] + 1).astype(np.int32)[None, :]})

    # fsaverage labels: nsdgeneral and an RSC patch that partly overlaps it
    mask = {}
    for hemi in HEMIS:
        v = vertices[hemi]
        general = rng.random(v) < mask_fraction
        rsc_label = np.zeros(v, dtype=bool)
        start = int(v * 0.8)
        rsc_label[start:start + max(4, v // 200)] = True  # NSD: 543 and 1021 of 163,842 vertices
        rsc_label[np.flatnonzero(general)[:3]] = True  # overlap: the union's value is 2 there
        mask[hemi] = general | rsc_label
        _save_mgh(root / LABELS / f"{hemi}.nsdgeneral.mgz", general.astype(np.float32)[:, None, None])
        if rsc:
            _save_mgh(root / LABELS / f"{hemi}.nsdgeneralRSC.mgz", rsc_label.astype(np.float32)[:, None, None])
    constant_vertex = int(np.flatnonzero(mask["lh"])[1])
    outside = {hemi: np.flatnonzero(~mask[hemi])[:2] for hemi in HEMIS}

    # images: only those some subject here sees are written
    shown = {s: subjectim[SUBJECTS.index(s), masterordering[: SESSIONS[s] * trials]] for s in subjects}
    used_ids = np.unique(np.concatenate(list(shown.values())))
    pictures = np.stack([_image(np.random.default_rng([seed, 104729, int(i)]), image_size) for i in used_ids])
    path = root / STIMULI
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        brick = f.create_dataset("imgBrick", shape=(N_IMAGES, image_size, image_size, 3), dtype=np.uint8,
                                 chunks=(1, image_size, image_size, 3))
        for i, picture in zip(used_ids.tolist(), pictures):
            brick[i] = picture
    feats = image_features(pictures)
    feats = (feats - feats.mean(0)) / np.maximum(feats.std(0), 1e-9)
    feature_of = dict(zip(used_ids.tolist(), range(len(used_ids))))

    bucket = Bucket(root, trials, vertices, masterordering, subjectim, mask, constant_vertex)
    for subject in subjects:
        srng = np.random.default_rng([seed, SUBJECTS.index(subject), 31])
        n_sessions = SESSIONS[subject]
        trial_features = feats[[feature_of[i] for i in shown[subject].tolist()]]
        folder = root / BETAS.format(subject=subject)
        bucket.nan_vertices[subject], bucket.ncsnr[subject] = {}, {}
        for hemi in HEMIS:
            v = vertices[hemi]
            weights = srng.normal(0, 1, (N_FEATURES, v))
            # the signal feats @ weights, scaled to unit variance over the images (computed from the features'
            # covariance: never a (trials x V) matrix in memory, so large surfaces stay cheap)
            mean = feats.mean(0) @ weights
            sd = np.sqrt(np.maximum(np.einsum("fv,fg,gv->v", weights, np.cov(feats.T, bias=True), weights), 1e-18))
            s = srng.uniform(0.3, 1.5, v)
            n = srng.uniform(0.5, 1.5, v)
            ncsnr = (s / n).astype(np.float32)
            nan_vertices = np.flatnonzero(mask[hemi])[[2, -2]] if subject in NAN_SUBJECTS else np.array([], int)
            ncsnr[nan_vertices] = np.nan
            bucket.nan_vertices[subject][hemi] = nan_vertices
            bucket.ncsnr[subject][hemi] = ncsnr
            _save_mgh(folder / f"{hemi}.ncsnr.mgh", ncsnr[:, None, None])
            for session in range(1, n_sessions + 1):
                rows = slice((session - 1) * trials, session * trials)
                offset = srng.normal(0, 2, v)
                gain = srng.uniform(0.5, 3.0, v)
                signal = (trial_features[rows] @ weights - mean) / sd
                z = s * signal + n * srng.normal(0, 1, (trials, v))
                betas = offset + gain * z  # (trials, V)
                if hemi == "lh" and session == CONSTANT_SESSION:
                    betas[:, constant_vertex] = offset[constant_vertex]
                betas[session % trials, outside[hemi]] = np.nan
                for k, vertex in enumerate(nan_vertices):
                    if session == 3 + 4 * k:
                        betas[k + 1, vertex] = np.nan
                _save_mgh(bucket.betas_path(subject, hemi, session), betas.T.astype(np.float32)[:, None, None, :])
    return bucket


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Write synthetic NSD subjects in the NSD bucket layout.")
    p.add_argument("out", type=Path, help="folder to write (the bucket root)")
    p.add_argument("--subjects", default="subj01", help="comma-separated, e.g. subj01,subj03,subj06")
    p.add_argument("--trials", type=int, default=12, help="trials per session (NSD: 750)")
    p.add_argument("--vertices", default="500,460", help="lh,rh surface sizes (fsaverage: 163842,163842)")
    p.add_argument("--image-size", type=int, default=8, help="image side in pixels (NSD: 425)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-rsc", action="store_true", help="leave out the devkit's nsdgeneralRSC labels")
    args = p.parse_args(argv)
    bucket = write_bucket(args.out, tuple(args.subjects.split(",")), trials=args.trials,
                          vertices=tuple(int(v) for v in args.vertices.split(",")), image_size=args.image_size,
                          seed=args.seed, rsc=not args.no_rsc)
    print(f"wrote {', '.join(bucket.nan_vertices)} under {bucket.root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
