"""Source B of nsd-algonauts2023: the challenge rebuilt from NSD files (``loaders/nsd/bucket.py``).

Synthetic subjects in the NSD bucket layout (``scripts/make_nsd_bucket_fixture.py``): subj01 (40 sessions, keeps
shared images seen 3 times in its test sessions), subj03 (32 sessions: test images shown 1, 2 and 3 times; every
shared image dropped), subj06 (32 sessions, NaN vertices removed).

What is checked against what:

* rows (which NSD ids, in which order), per-session z-scoring, repeat averaging and noise ceilings against
  :func:`_reference`, a plain reimplementation written here from the devkit's description: pandas over the raw
  arrays read with nibabel/scipy/h5py (value_counts for the split and the repeat counts, mean / population std
  per session, groupby-mean per image). It shares no code with the module; float32 results agree to 1e-6;
* bit-identity with the devkit's arithmetic (scikit-learn's StandardScaler on the array layout the devkit
  builds, ``np.mean`` over each image's trials), and, when the devkit is available
  (``$NH_ALGONAUTS_DEVKIT``, default its mirror), with the devkit's own script run on the fixture;
* hand-picked cases that say what the rules mean (a train image with a trial in the test sessions; z-scoring
  per session, not over all sessions; a vertex constant within a session);
* bad inputs: clear errors naming subject and file, nothing left in the scratch folder.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import scipy.io
from helpers import load_script

from neuroharness.errors import DataFormatError

fx = load_script("make_nsd_bucket_fixture")
SUBJECTS = ("subj01", "subj03", "subj06")
DEVKIT = os.environ.get("NH_ALGONAUTS_DEVKIT", "/work/.mirror/gifale95+algonauts_2023/repo")
DEVKIT_SCRIPT = "code/01_challenge_data_preparation/challenge_data_preparation.py"


@pytest.fixture(scope="module")
def bucket(tmp_path_factory):
    return fx.write_bucket(tmp_path_factory.mktemp("nsd") / "bucket", SUBJECTS)


@pytest.fixture(scope="module")
def built(bucket, tmp_path_factory):
    from neuroharness.loaders.nsd.bucket import subject_from_nsd

    work = tmp_path_factory.mktemp("work")
    return {s: subject_from_nsd(bucket.root, s, workdir=work) for s in SUBJECTS}


@pytest.fixture(scope="module")
def reference(bucket):
    return {s: _reference(bucket.root, s) for s in SUBJECTS}


# -- the independent reimplementation ------------------------------------------------------------------------------
def _mgh(path) -> np.ndarray:
    return np.asarray(nib.load(str(path)).get_fdata())


def _reference(root: Path, subject: str) -> dict:
    n = int(subject[4:])
    sessions = fx.SESSIONS[subject]
    mat = scipy.io.loadmat(root / fx.EXPDESIGN)
    order, images = mat["masterordering"].ravel() - 1, mat["subjectim"] - 1
    folder = root / fx.BETAS.format(subject=subject)
    per_session = nib.load(str(folder / "lh.betas_session01.mgh")).shape[-1]
    trials = pd.DataFrame({"nsd_id": images[n - 1, order[: sessions * per_session]],
                           "session": np.repeat(np.arange(1, sessions + 1), per_session)})
    in_train = trials["session"] <= sessions - 3
    train_ids = np.sort(trials.loc[in_train, "nsd_id"].unique())
    shown_last = trials.loc[~in_train, "nsd_id"].value_counts()
    fresh = shown_last[~shown_last.index.isin(train_ids)]
    shared = set(images[0, :1000].tolist())
    full = n in (1, 2, 5, 7)
    test_ids = np.sort([i for i, c in fresh.items() if i not in shared or (full and c == 3)])
    reps = shown_last[test_ids].value_counts()
    a, b, c = (int(reps.get(k, 0)) for k in (3, 2, 1))
    norm = (a / 3 + b / 2 + c / 1) / (a + b + c)

    out = {"train_ids": train_ids, "test_ids": test_ids, "trials": trials, "norm": norm, "reps": (a, b, c),
           "fmri": {}, "index": {}, "nc": {}}
    label = root / fx.LABELS
    for hemi in fx.HEMIS:
        mask = (_mgh(label / f"{hemi}.nsdgeneral.mgz") + _mgh(label / f"{hemi}.nsdgeneralRSC.mgz")).ravel() != 0
        zs = []
        for s in range(1, sessions + 1):
            x = pd.DataFrame(_mgh(folder / f"{hemi}.betas_session{s:02d}.mgh").reshape(-1, per_session)[mask].T)
            std = x.std(ddof=0)
            std[std <= 1e-12 * np.maximum(1, x.mean().abs())] = 1.0  # a vertex constant within the session
            zs.append((x - x.mean()) / std)
        z = pd.concat(zs, ignore_index=True)
        keep = ~z.isna().any().to_numpy() if n in (6, 8) else np.ones(mask.sum(), bool)
        z = z.loc[:, keep]
        z["nsd_id"] = trials["nsd_id"].to_numpy()
        train = z[in_train.to_numpy()].groupby("nsd_id").mean().loc[train_ids]
        test = z[trials["nsd_id"].isin(test_ids).to_numpy()].groupby("nsd_id").mean().loc[test_ids]
        out["fmri"][hemi] = np.concatenate([train.to_numpy(), test.to_numpy()]).astype(np.float32)
        out["index"][hemi] = np.flatnonzero(mask)[keep]
        snr = _mgh(folder / f"{hemi}.ncsnr.mgh").ravel()[np.flatnonzero(mask)[keep]]
        out["nc"][hemi] = (snr**2 / (snr**2 + norm)).astype(np.float32)
    return out


# -- rows --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("subject", SUBJECTS)
def test_rows_are_the_challenge_split(built, reference, subject):
    a, ref = built[subject], reference[subject]
    n_train = len(ref["train_ids"])
    np.testing.assert_array_equal(a.nsd_id, np.concatenate([ref["train_ids"], ref["test_ids"]]))
    assert a.nsd_id.dtype == np.int32
    assert a.split.tolist() == ["train"] * n_train + ["test"] * len(ref["test_ids"])
    np.testing.assert_array_equal(a.split_row, np.concatenate([np.arange(n_train), np.arange(len(ref["test_ids"]))]))
    assert a.attrs["n_sessions"] == fx.SESSIONS[subject]
    assert a.attrs["test_fmri"] == (f"rebuilt from NSD sessions {fx.SESSIONS[subject] - 2}..{fx.SESSIONS[subject]} "
                                    "with the devkit recipe")


@pytest.mark.parametrize("subject", SUBJECTS)
def test_split_rules_hold_and_are_exercised(built, reference, bucket, subject):
    """What the rule means, checked on the rows themselves; and the fixture really exercises each branch."""
    a, ref = built[subject], reference[subject]
    trials = ref["trials"]
    n_sessions = fx.SESSIONS[subject]
    train = a.nsd_id[a.split == "train"]
    test = a.nsd_id[a.split == "test"]
    assert (np.diff(train) > 0).all() and (np.diff(test) > 0).all()  # increasing ids, each once
    assert not set(train) & set(test)
    sessions_of = trials.groupby("nsd_id")["session"].agg(list)
    assert all(min(sessions_of[i]) > n_sessions - 3 for i in test)  # every trial in the last 3 sessions
    assert all(min(sessions_of[i]) <= n_sessions - 3 for i in train)
    shared = set(bucket.subjectim[0, :1000].tolist())
    shared_test = [i for i in test if i in shared]
    if subject == "subj01":
        assert shared_test and all(len(sessions_of[i]) == 3 for i in shared_test)
        assert ref["reps"][0] > 0
    else:
        assert not shared_test
        dropped = [i for i in shared if i in sessions_of and min(sessions_of[i]) > n_sessions - 3]
        assert dropped  # a shared image only in the test sessions, left out
        assert ref["reps"][1] > 0 and ref["reps"][2] > 0  # test images seen twice and once
    # training images that come back in the test sessions (their later trials are not averaged)
    assert any(max(sessions_of[i]) > n_sessions - 3 for i in train)


# -- responses ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("subject", SUBJECTS)
def test_responses_equal_reference(built, reference, subject):
    a, ref = built[subject], reference[subject]
    for hemi in fx.HEMIS:
        f = np.asarray(a.fmri[hemi])
        assert f.dtype == np.float32 and f.shape == ref["fmri"][hemi].shape
        np.testing.assert_array_equal(a.fsaverage_index[hemi], ref["index"][hemi])
        np.testing.assert_allclose(f, ref["fmri"][hemi], rtol=1e-6, atol=1e-6)
        assert np.isfinite(f).all()
        np.testing.assert_allclose(a.noise_ceiling[hemi], ref["nc"][hemi], rtol=1e-6, atol=1e-7)
        assert a.noise_ceiling[hemi].dtype == np.float32
    assert a.attrs["noise_ceiling_norm"] == pytest.approx(ref["norm"])


def _raw_vertex(bucket, subject: str, hemi: str, vertex: int) -> np.ndarray:
    """(sessions, trials) raw betas of one vertex."""
    folder = bucket.root / fx.BETAS.format(subject=subject)
    return np.stack([_mgh(folder / f"{hemi}.betas_session{s:02d}.mgh").reshape(-1, bucket.trials)[vertex]
                     for s in range(1, fx.SESSIONS[subject] + 1)])


def test_responses_are_per_session_zscores_averaged_over_training_trials(built, bucket, reference):
    """Spelled out for one vertex with numpy: the z-score uses the session's own mean and population std, and a
    training image's row averages its trials in the training sessions only."""
    a, trials = built["subj01"], reference["subj01"]["trials"]
    vertex = int(np.flatnonzero(bucket.mask["rh"])[5])
    col = int(np.flatnonzero(a.fsaverage_index["rh"] == vertex)[0])
    raw = _raw_vertex(bucket, "subj01", "rh", vertex)
    z = ((raw - raw.mean(1, keepdims=True)) / raw.std(1, keepdims=True)).ravel()  # per session
    sessions_of = trials.groupby("nsd_id")["session"].agg(list)
    back = next(i for i in a.nsd_id[a.split == "train"] if max(sessions_of[i]) > 37 and min(sessions_of[i]) <= 37)
    idx = np.flatnonzero(trials["nsd_id"].to_numpy() == back)
    in_train = idx[idx < 37 * bucket.trials]
    row = int(np.flatnonzero(a.nsd_id == back)[0])
    assert a.fmri["rh"][row, col] == pytest.approx(z[in_train].mean(), abs=1e-6)
    assert z[idx].mean() != pytest.approx(z[in_train].mean(), abs=1e-4)  # its test-session trial is left out
    # z-scoring over all sessions at once would give another value
    flat = raw.ravel()
    assert ((flat[in_train] - flat.mean()) / flat.std()).mean() != pytest.approx(z[in_train].mean(), abs=1e-3)


def test_vertex_constant_within_a_session(built, bucket, reference):
    """StandardScaler divides a constant column by 1: that session's trials are 0 there, never NaN/inf."""
    a, trials = built["subj01"], reference["subj01"]["trials"]
    vertex = bucket.constant_vertex
    col = int(np.flatnonzero(a.fsaverage_index["lh"] == vertex)[0])
    raw = _raw_vertex(bucket, "subj01", "lh", vertex)
    assert np.ptp(raw[fx.CONSTANT_SESSION - 1]) == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (raw - raw.mean(1, keepdims=True)) / raw.std(1, keepdims=True)
    z[fx.CONSTANT_SESSION - 1] = 0.0
    z = z.ravel()
    ids = trials["nsd_id"].to_numpy()
    n_train = 37 * bucket.trials
    there = np.unique(ids[(trials["session"] == fx.CONSTANT_SESSION).to_numpy()])
    assert len(there)
    for i in there:
        row = int(np.flatnonzero(a.nsd_id == i)[0])
        assert a.fmri["lh"][row, col] == pytest.approx(z[np.flatnonzero(ids[:n_train] == i)].mean(), abs=1e-6)
    assert np.isfinite(a.fmri["lh"][:, col]).all()


def test_nan_vertices_removed_for_subj06_only(built, bucket):
    a = built["subj06"]
    for hemi in fx.HEMIS:
        gone = bucket.nan_vertices["subj06"][hemi]
        assert len(gone) == 2 and not np.isin(gone, a.fsaverage_index[hemi]).any()
        assert len(a.fsaverage_index[hemi]) == bucket.mask[hemi].sum() - 2
        assert a.attrs[f"nan_vertices_removed_{hemi}"] == 2
        assert a.attrs[f"vertices_{hemi}"] == len(a.fsaverage_index[hemi]) == a.fmri[hemi].shape[1]
        assert np.isfinite(a.noise_ceiling[hemi]).all()  # their ncsnr is NaN: removed with them
    for s in ("subj01", "subj03"):  # NaN outside nsdgeneral (every subject has some) is ignored
        assert all(built[s].attrs[f"nan_vertices_removed_{h}"] == 0 for h in fx.HEMIS)
        assert all(len(built[s].fsaverage_index[h]) == bucket.mask[h].sum() for h in fx.HEMIS)


def test_images_and_attrs(built, bucket):
    a = built["subj03"]
    with h5py.File(bucket.root / fx.STIMULI, "r") as f:
        brick = f["imgBrick"]
        for i in (0, 7, len(a.nsd_id) - 1):
            np.testing.assert_array_equal(a.image(i), brick[a.nsd_id[i]])
    assert a.image_shape == (8, 8) and a.image(3).dtype == np.uint8
    assert a.rois == {}
    assert a.attrs["source_kind"] == "NSD files"
    assert a.attrs["rois"] == "not available from NSD files; prepare from the challenge release for ROI masks"
    with pytest.raises(ValueError):
        a.fmri["lh"][0, 0] = 1.0  # the scratch-backed responses are read-only


# -- bit-identity with the devkit --------------------------------------------------------------------------------------
def test_bit_identical_to_devkit_arithmetic(built, bucket):
    """StandardScaler on the devkit's array layout (nibabel -> squeeze -> transpose -> column mask) and np.mean
    over each image's trials: the same bits as the module (exact, not approximate)."""
    from sklearn.preprocessing import StandardScaler

    a, subject, t = built["subj06"], "subj06", bucket.trials
    folder = bucket.root / fx.BETAS.format(subject=subject)
    label = bucket.root / fx.LABELS
    ref = _reference(bucket.root, subject)
    n_train = len(ref["train_ids"])
    for hemi in fx.HEMIS:
        idx = np.flatnonzero((_mgh(label / f"{hemi}.nsdgeneral.mgz") + _mgh(label / f"{hemi}.nsdgeneralRSC.mgz"))
                             .astype(int).ravel())
        sessions = [StandardScaler().fit_transform(np.transpose(np.squeeze(
            nib.load(str(folder / f"{hemi}.betas_session{s:02d}.mgh")).get_fdata()))[:, idx])
            for s in range(1, fx.SESSIONS[subject] + 1)]
        z = np.concatenate(sessions)
        z = z[:, ~np.isnan(z).any(axis=0)]
        ids = ref["trials"]["nsd_id"].to_numpy()
        train = np.stack([z[np.flatnonzero(ids[: (fx.SESSIONS[subject] - 3) * t] == i)].mean(0)
                          for i in ref["train_ids"]])
        test = np.stack([z[np.flatnonzero(ids == i)].mean(0) for i in ref["test_ids"]])
        np.testing.assert_array_equal(a.fmri[hemi][:n_train], train.astype(np.float32))
        np.testing.assert_array_equal(a.fmri[hemi][n_train:], test.astype(np.float32))


def test_session_zscores_bit_identical_in_float64(bucket):
    """Before the float32 cast, too: the module reads a session in the devkit's memory layout (numpy sums a
    contiguous column pairwise and a strided one sequentially, which changes the last float64 bits)."""
    from sklearn.preprocessing import StandardScaler

    from neuroharness.loaders.nsd import bucket as nsd_bucket

    folder = bucket.root / fx.BETAS.format(subject="subj01")
    rel = f"{fx.BETAS.format(subject='subj01')}/lh.betas_session05.mgh"
    idx = np.flatnonzero(bucket.mask["lh"])
    devkit = StandardScaler().fit_transform(
        np.transpose(np.squeeze(nib.load(str(folder / "lh.betas_session05.mgh")).get_fdata()))[:, idx])
    root = nsd_bucket._Root(bucket.root)
    betas = nsd_bucket._betas_header(root, rel, "subj01", bucket.vertices["lh"])
    x = nsd_bucket._read_session(root, betas, idx, bucket.vertices["lh"])
    np.testing.assert_array_equal(nsd_bucket.zscore_session(x), devkit)


def test_zscore_session_is_standard_scaler():
    from sklearn.preprocessing import StandardScaler

    from neuroharness.loaders.nsd.bucket import zscore_session

    rng = np.random.default_rng(3)
    for trials in (7, 750):
        x = np.asfortranarray(rng.normal(2, 3, (trials, 64)).astype(np.float32).astype(np.float64))
        x[:, 1] = 0.3  # constant
        x[:, 2] = 0.0
        x[4, 5] = np.nan
        x[:, 6] = np.nan
        with np.errstate(invalid="ignore", divide="ignore"):
            expected = StandardScaler().fit_transform(x)
            got = zscore_session(x.copy(order="F"))
        np.testing.assert_array_equal(got, expected)


def _devkit_script() -> str | None:
    path = Path(DEVKIT)
    if (path / DEVKIT_SCRIPT).is_file():
        return (path / DEVKIT_SCRIPT).read_text()
    if path.is_dir():
        done = subprocess.run(["git", "-C", str(path), "show", f"HEAD:{DEVKIT_SCRIPT}"], capture_output=True, text=True)
        if done.returncode == 0:
            return done.stdout
    return None


def test_equals_devkit_script_output(bucket, built, tmp_path):
    """The devkit's preparation script, run as a subprocess on the fixture (from ``$NH_ALGONAUTS_DEVKIT``, a
    checkout or its git directory; skipped without it). Two things differ from NSD and are adapted in a
    temporary copy, never in the project: its constant ``images_per_session = 750`` (the fixture has fewer
    trials per session) and ``nsdcode`` (the ROI mapping, which comes after the outputs compared here; a stub
    stops the script there)."""
    script = _devkit_script()
    if script is None:
        pytest.skip(f"the Algonauts 2023 devkit is not at {DEVKIT} (set NH_ALGONAUTS_DEVKIT)")
    assert script.count("images_per_session = 750") == 1
    (tmp_path / "prep.py").write_text(script.replace("images_per_session = 750",
                                                     f"images_per_session = {bucket.trials}"))
    (tmp_path / "nsdcode").mkdir()
    (tmp_path / "nsdcode" / "__init__.py").write_text("")
    (tmp_path / "nsdcode" / "nsd_mapdata.py").write_text(
        "class NSDmapdata:\n    def __init__(self, *a, **k):\n        raise SystemExit(0)\n")
    out = tmp_path / "out"
    runs = {s: subprocess.Popen([sys.executable, "prep.py", "--sub", str(int(s[4:])), "--nsd_dir", str(bucket.root),
                                 "--save_dir", str(out / s)], cwd=tmp_path, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(tmp_path)})
            for s in SUBJECTS}  # in parallel: each spends seconds importing
    errors = {s: run.communicate(timeout=300)[1] for s, run in runs.items()}
    for subject in SUBJECTS:
        d = out / subject / subject
        if not (d / "test_split" / "noise_ceiling" / "rh_noise_ceiling.npy").is_file():
            pytest.fail(f"the devkit script stopped before its noise ceilings:\n{errors[subject][-3000:]}")
        a = built[subject]
        n_train = int((a.split == "train").sum())
        for hemi in fx.HEMIS:
            train = np.load(d / "training_split" / "training_fmri" / f"{hemi}_training_fmri.npy")
            test = np.load(d / "test_split" / "test_fmri" / f"{hemi}_test_fmri.npy")
            nc = np.load(d / "test_split" / "noise_ceiling" / f"{hemi}_noise_ceiling.npy")
            allv = np.load(d / "roi_masks" / f"{hemi}.all-vertices_fsaverage_space.npy")
            assert train.tobytes() == np.ascontiguousarray(a.fmri[hemi][:n_train]).tobytes()
            assert test.tobytes() == np.ascontiguousarray(a.fmri[hemi][n_train:]).tobytes()
            np.testing.assert_array_equal(np.flatnonzero(allv), a.fsaverage_index[hemi])
            np.testing.assert_array_equal(nc.astype(np.float32), a.noise_ceiling[hemi])


# -- a good model beats a poor one ---------------------------------------------------------------------------------
def test_responses_depend_on_the_images(built):
    """The fixture's responses are a linear function of image features plus noise: ridge on those features
    predicts held-out test responses far better than the training mean (r ~ 0)."""
    a = built["subj01"]
    feats = fx.image_features(np.stack([a.image(i) for i in range(len(a.nsd_id))]))
    feats = np.c_[(feats - feats.mean(0)) / feats.std(0), np.ones(len(feats))]
    train, test = a.split == "train", a.split == "test"
    y = np.asarray(a.fmri["lh"])
    w = np.linalg.solve(feats[train].T @ feats[train] + np.eye(feats.shape[1]), feats[train].T @ y[train])
    pred = feats[test] @ w
    r = [np.corrcoef(pred[:, v], y[test][:, v])[0, 1] for v in range(y.shape[1])]
    assert np.median(r) > 0.5


# -- bad input ---------------------------------------------------------------------------------------------------------
@pytest.fixture
def one(tmp_path_factory, tmp_path):
    """A fresh copy of a subj01-only bucket to damage, and an empty scratch folder."""
    src = tmp_path_factory.getbasetemp() / "nsd_one"
    if not src.exists():
        fx.write_bucket(src, ("subj01",))
    root = tmp_path / "bucket"
    shutil.copytree(src, root)
    return root, tmp_path / "work"


def _fails(root, work, subject="subj01", **kw) -> str:
    from neuroharness.loaders.nsd.bucket import subject_from_nsd

    with pytest.raises(DataFormatError) as e:
        subject_from_nsd(root, subject, workdir=work, **kw)
    assert not work.exists() or not any(work.rglob("*")), "scratch files left behind"
    return str(e.value)


def test_subject_absent_from_design(one):
    root, work = one
    msg = _fails(root, work, "subj09")
    assert "subj09" in msg and str(root / fx.EXPDESIGN) in msg and "8 subject rows" in msg
    mat = scipy.io.loadmat(root / fx.EXPDESIGN)
    scipy.io.savemat(root / fx.EXPDESIGN, {"masterordering": mat["masterordering"], "subjectim": mat["subjectim"][:4]})
    msg = _fails(root, work, "subj05")
    assert "subj05 is not in the NSD experiment design" in msg and "subj01..subj04" in msg
    assert "subject 'S1'" in _fails(root, work, "S1")


def test_wrong_surface_size(one):
    root, work = one
    path = root / fx.BETAS.format(subject="subj01") / "lh.betas_session07.mgh"
    data = nib.load(str(path)).get_fdata(dtype=np.float32)  # a copy: the file is rewritten below
    nib.save(nib.MGHImage(data[:-1], np.eye(4)), str(path))
    msg = _fails(root, work)
    assert msg.startswith("subj01: ") and str(path) in msg and "499 vertices; expected 500" in msg


def test_missing_rsc_label(one, tmp_path):
    root, work = one
    label = root / fx.LABELS / "rh.nsdgeneralRSC.mgz"
    moved = tmp_path / "devkit"
    moved.mkdir()
    shutil.move(root / fx.LABELS / "lh.nsdgeneralRSC.mgz", moved)
    shutil.move(label, moved)
    msg = _fails(root, work)
    assert "subj01" in msg and str(root / fx.LABELS / "lh.nsdgeneralRSC.mgz") in msg
    assert "Algonauts 2023 devkit" in msg and "rsc_label" in msg
    # given explicitly (or through $NEUROHARNESS_NSD_RSC) it is found
    from neuroharness.loaders.nsd.bucket import subject_from_nsd

    assert subject_from_nsd(root, "subj01", rsc_label=moved, workdir=work).attrs["vertices_lh"] > 0


def test_missing_session_file(one):
    root, work = one
    path = root / fx.BETAS.format(subject="subj01") / "rh.betas_session33.mgh"
    path.unlink()
    msg = _fails(root, work)
    assert msg.startswith("subj01: ") and str(path) in msg and "missing" in msg


def test_truncated_and_inconsistent_session_files(one):
    root, work = one
    folder = root / fx.BETAS.format(subject="subj01")
    path = folder / "lh.betas_session12.mgh"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    msg = _fails(root, work)
    assert str(path) in msg and "truncated" in msg
    data = nib.load(str(folder / "lh.betas_session11.mgh")).get_fdata(dtype=np.float32)
    nib.save(nib.MGHImage(data[..., :-1], np.eye(4)), str(path))
    msg = _fails(root, work)
    assert str(path) in msg and "11 trials" in msg and "12" in msg


def test_nan_inside_the_mask(one, tmp_path):
    """Only subj06/subj08 lose NaN vertices; elsewhere a NaN is damage, found mid-build: nothing left behind."""
    root, work = one
    path = root / fx.BETAS.format(subject="subj01") / "rh.betas_session20.mgh"
    data = nib.load(str(path)).get_fdata(dtype=np.float32)
    mask = (_mgh(root / fx.LABELS / "rh.nsdgeneral.mgz") + _mgh(root / fx.LABELS / "rh.nsdgeneralRSC.mgz")).ravel()
    vertex = int(np.flatnonzero(mask)[10])
    data[vertex, 0, 0, 4] = np.nan
    nib.save(nib.MGHImage(data, np.eye(4)), str(path))
    msg = _fails(root, work)
    assert msg.startswith("subj01: ") and str(path) in msg and f"vertex {vertex}" in msg and "trial 4" in msg


def test_missing_stimuli_and_design(one):
    root, work = one
    (root / fx.STIMULI).unlink()
    assert str(root / fx.STIMULI) in _fails(root, work)
    (root / fx.EXPDESIGN).unlink()
    msg = _fails(root, work)
    assert msg.startswith("subj01: ") and str(root / fx.EXPDESIGN) in msg


def test_prepare_through_the_loader(one, tmp_path, monkeypatch):
    """``prepare --source DIR`` on the NSD-files layout writes the store; a damaged source leaves no store."""
    from neuroharness.loaders import get_loader

    root, _ = one
    monkeypatch.setenv("NEUROHARNESS_HOME", str(tmp_path / "home"))
    loader = get_loader("nsd-algonauts2023")
    path = loader.prepare(source=root)
    group = __import__("zarr").open_group(str(path), mode="r")
    assert list(group.attrs["subjects"]) == ["subj01"]
    assert group["subj01"].attrs["source_kind"] == "NSD files"
    (root / fx.BETAS.format(subject="subj01") / "lh.betas_session02.mgh").unlink()
    with pytest.raises(DataFormatError, match="lh.betas_session02.mgh"):
        loader.prepare(source=root, force=True)
    assert path.exists()  # the old store is untouched
    assert not list(path.parent.glob(f".{path.name}.tmp-*"))
