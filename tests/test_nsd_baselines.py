"""nsd-encoding baselines: the per-vertex CV ridge, AlexNet (architecture, weights, features), the models.

Everything is synthetic and small: images are 32 × 32 colour patchworks whose four quadrant colours (12
latent numbers) drive the responses linearly, so a model that sees the images must beat the mean response.
AlexNet runs with randomly initialised weights saved to a temporary file (the real weights are never needed).
"""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import xarray as xr

from neuroharness.errors import ChecksumError, DataFormatError, UsageError
from neuroharness.tasks.model_utils import describe
from neuroharness.tasks.nsd.data import EncodingSet
from neuroharness.tasks.nsd.ridge import alpha_grid, himalaya_ridge_cv, kfold, ridge, ridge_cv

torch = pytest.importorskip("torch")


# -- ridge ----------------------------------------------------------------------------------------------
def _problem(n=200, p=12, V=40, noise=1.0, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p)) * rng.uniform(0.2, 3.0, p) + rng.normal(size=p)
    W = rng.normal(size=(p, V))
    Y = X @ W + 5.0 + noise * rng.normal(size=(n, V)) * rng.uniform(0.1, 10, V)
    return X, Y


def test_ridge_with_given_alpha_is_the_closed_form():
    X, Y = _problem()
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    for alpha in (0.5, 300.0):
        w = np.linalg.solve(Xc.T @ Xc + alpha * np.eye(X.shape[1]), Xc.T @ Yc)
        fit = ridge(X, Y, alpha)
        np.testing.assert_allclose(fit.coef, w, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(fit.intercept, Y.mean(0) - X.mean(0) @ w, rtol=1e-5, atol=1e-5)
    # one alpha per target: each column is its own closed form
    alphas = np.geomspace(0.1, 1e4, Y.shape[1])
    fit = ridge(X, Y, alphas)
    for j in (0, 17, Y.shape[1] - 1):
        w = np.linalg.solve(Xc.T @ Xc + alphas[j] * np.eye(X.shape[1]), Xc.T @ Yc[:, j])
        np.testing.assert_allclose(fit.coef[:, j], w, rtol=1e-5, atol=1e-6)


def _brute_force_cv(X, Y, alphas, folds, seed):
    """Mean over folds of minus the validation MSE, one explicit ridge fit per fold and alpha."""
    scores = np.zeros((len(alphas), Y.shape[1]))
    for tr, va in kfold(len(X), folds, seed):
        for a, alpha in enumerate(alphas):
            pred = ridge(X[tr], Y[tr], alpha).predict(X[va])
            scores[a] -= ((Y[va] - pred) ** 2).mean(0)
    return scores / folds


def test_cv_picks_the_known_best_alpha():
    # w ~ N(0, tau² I), noise N(0, sigma²): the expected-risk-optimal ridge penalty is sigma²/tau².
    rng = np.random.default_rng(1)
    n, p, V = 120, 40, 300
    X = rng.normal(size=(n, p))
    tau = np.r_[np.full(V // 2, 1.0), np.full(V // 2, 0.1)]  # alpha* = 1 for the first half, 100 for the second
    Y = X @ (rng.normal(size=(p, V)) * tau) + rng.normal(size=(n, V))
    grid = alpha_grid(1e-2, 1e4, 7)
    fit = ridge_cv(X, Y, grid, folds=5, seed=3)
    assert np.median(fit.alphas[: V // 2]) == 1.0
    assert np.median(fit.alphas[V // 2:]) == 100.0
    # and each target's choice is exactly the argmax of the brute-force CV score
    brute = _brute_force_cv(X, Y, grid, 5, 3)
    np.testing.assert_array_equal(fit.alphas, grid[np.argmax(brute, axis=0)])
    np.testing.assert_allclose(fit.cv_scores, brute.max(axis=0), rtol=1e-6)  # brute: float32 predictions


def test_noiseless_linear_response_is_recovered():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(150, 10))
    W, b = rng.normal(size=(10, 25)), rng.normal(size=25)
    fit = ridge_cv(X, X @ W + b, alpha_grid(1e-6, 1e2, 9), folds=4, seed=0)
    # no noise: the small end of the grid wins everywhere (among near-equal tiny errors, himalaya's tie-break
    # prefers the larger alpha, so 1e-4 rather than 1e-6)
    assert (fit.alphas <= 1e-4).all()
    np.testing.assert_allclose(fit.coef, W, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(fit.intercept, b, rtol=1e-4, atol=1e-5)
    Xn = rng.normal(size=(30, 10))
    np.testing.assert_allclose(fit.predict(Xn), Xn @ W + b, rtol=1e-4, atol=1e-4)


def test_ridge_cv_agrees_with_himalaya():
    X, Y = _problem(n=300, p=20, V=400, seed=4)
    grid = alpha_grid(1e-2, 1e6, 17)
    ours = ridge_cv(X, Y, grid, folds=5, seed=0, block=128)  # several column blocks
    ref = himalaya_ridge_cv(X, Y, grid, folds=5, seed=0)
    np.testing.assert_allclose(ours.alphas, ref.alphas, rtol=1e-9)  # himalaya returns exp(-log(alpha))
    assert len(np.unique(ours.alphas)) >= 5  # a real choice, not one alpha everywhere
    np.testing.assert_allclose(ours.cv_scores, ref.cv_scores, rtol=1e-6)
    Xn = np.random.default_rng(5).normal(size=(50, 20))
    a, b = ours.predict(Xn), ref.predict(Xn)
    assert np.abs(a - b).max() <= 1e-5 * np.abs(b).max()


def test_ridge_cv_float32_responses_and_refusals():
    X, Y = _problem(n=120, p=8, V=30, seed=6)
    f64 = ridge_cv(X, Y, folds=3, seed=1)
    f32 = ridge_cv(X.astype(np.float32), Y.astype(np.float32), folds=3, seed=1)
    assert np.mean(f64.alphas == f32.alphas) > 0.9
    Y[7, 3] = np.nan
    with pytest.raises(ValueError, match="columns 0..29 hold NaN"):
        ridge_cv(X, Y, folds=3)
    with pytest.raises(ValueError, match="alpha_min"):
        alpha_grid(0, 10, 5)
    with pytest.raises(ValueError, match="folds"):
        ridge_cv(X, np.nan_to_num(Y), folds=1)


# -- AlexNet ---------------------------------------------------------------------------------------------
def test_alexnet_layers_and_feature_size():
    from neuroharness.tasks.nsd import alexnet

    assert list(alexnet.LAYERS) == ["maxpool1", "maxpool2", "ReLU3", "ReLU4", "maxpool5", "ReLU6", "ReLU7", "fc8"]
    by_hand = 64 * 27 * 27 + 192 * 13 * 13 + 384 * 13 * 13 + 256 * 13 * 13 + 256 * 6 * 6 + 4096 + 4096 + 1000
    assert alexnet.N_FEATURES == by_hand == 205_672
    torch.manual_seed(0)
    net = alexnet.AlexNet().eval()
    x = torch.randn(2, 3, 224, 224)
    feats = net.layer_features(x)
    assert feats.shape == (2, by_hand) and feats.dtype == np.float32
    # each slice is the output of the named layer, computed independently with the module tree
    with torch.no_grad():
        f = net.features
        head = torch.flatten(net.avgpool(f(x)), 1)
        c = net.classifier
        expected = [f[:3](x), f[:6](x), f[:8](x), f[:10](x), f(x), c[:3](head), c[:6](head), net(x)]
    offset = 0
    for (name, shape), out in zip(alexnet.LAYERS.items(), expected):
        assert tuple(out.shape[1:]) == shape, name
        size = int(np.prod(shape))
        np.testing.assert_allclose(feats[:, offset: offset + size], out.flatten(1).numpy(), rtol=1e-5, atol=1e-6,
                                   err_msg=name)
        offset += size


def test_alexnet_state_dict_is_torchvisions():
    from neuroharness.tasks.nsd.alexnet import AlexNet

    shapes = {k: tuple(v.shape) for k, v in AlexNet().state_dict().items()}
    assert shapes == {
        "features.0.weight": (64, 3, 11, 11), "features.0.bias": (64,),
        "features.3.weight": (192, 64, 5, 5), "features.3.bias": (192,),
        "features.6.weight": (384, 192, 3, 3), "features.6.bias": (384,),
        "features.8.weight": (256, 384, 3, 3), "features.8.bias": (256,),
        "features.10.weight": (256, 256, 3, 3), "features.10.bias": (256,),
        "classifier.1.weight": (4096, 9216), "classifier.1.bias": (4096,),
        "classifier.4.weight": (4096, 4096), "classifier.4.bias": (4096,),
        "classifier.6.weight": (1000, 4096), "classifier.6.bias": (1000,),
    }


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Randomly initialised AlexNet weights in a temporary file (torch.save of the state dict, as torchvision's)."""
    from neuroharness.tasks.nsd.alexnet import AlexNet

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("alexnet") / "random-alexnet.pth"
    torch.save(AlexNet().state_dict(), path)
    return path


def test_weights_strict_load_round_trip(weights, tmp_path):
    from neuroharness.tasks.nsd.alexnet import load_alexnet

    saved = torch.load(weights, weights_only=True)
    net = load_alexnet(weights)
    assert not net.training
    for k, v in net.state_dict().items():
        assert torch.equal(v, saved[k]), k
    # strict: unexpected and missing keys are refused (small partial state dicts keep the files small)
    torch.save({"features.0.weight": saved["features.0.weight"], "features.1.weight": torch.zeros(1)},
               tmp_path / "partial.pth")
    with pytest.raises(DataFormatError, match=r"partial.pth: not torchvision's AlexNet.*Missing key.*"
                                              r"classifier\.6\.bias.*Unexpected key.*features\.1\.weight"):
        load_alexnet(tmp_path / "partial.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(DataFormatError, match="junk.pth: unreadable as a torch state dict"):
        load_alexnet(tmp_path / "junk.pth")


def test_missing_weights_error_names_both_places(tmp_path, monkeypatch):
    from neuroharness.tasks.nsd import alexnet

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    cached = tmp_path / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    with pytest.raises(DataFormatError) as e:
        alexnet.resolve_weights(None)
    msg = str(e.value)
    assert str(cached) in msg and "weights=PATH" in msg and alexnet.WEIGHTS_URL in msg and "never downloads" in msg
    with pytest.raises(DataFormatError) as e:
        alexnet.resolve_weights(tmp_path / "nope.pth")
    msg = str(e.value)
    assert f"{tmp_path / 'nope.pth'}: file not found" in msg and str(cached) in msg and alexnet.WEIGHTS_URL in msg
    # a cached file whose content does not match the hash in its name is refused when the model loads it
    from neuroharness.tasks.nsd.baselines import AlexnetPcaRidge

    cached.parent.mkdir(parents=True)
    torch.save(alexnet.AlexNet().state_dict(), cached)
    assert alexnet.resolve_weights(None) == cached
    with pytest.raises(ChecksumError, match="does not start with 7be5be79"):
        AlexnetPcaRidge()._network()


def test_resize_matches_pil_within_one_grey_level():
    from PIL import Image

    from neuroharness.tasks.nsd.alexnet import IMAGENET_MEAN, IMAGENET_STD, preprocess

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (425, 425, 3), dtype=np.uint8)
    img[100:300, 50:200] = (250, 10, 120)  # edges as well as noise
    ours = preprocess(img[None])[0].numpy().transpose(1, 2, 0)
    ours = np.round((ours * IMAGENET_STD + IMAGENET_MEAN) * 255)
    pil = np.asarray(Image.fromarray(img).resize((224, 224), Image.BILINEAR), dtype=np.float64)
    diff = np.abs(ours - pil)
    assert diff.max() <= 1 and diff.mean() < 0.15  # about one value in nine is one grey level off


# -- models on a synthetic subject -------------------------------------------------------------------------
def _images(z: np.ndarray, rng) -> np.ndarray:
    """(n, 32, 32, 3) uint8: quadrant q of image i filled with colour z[i, q] (0..1), plus pixel noise."""
    n = len(z)
    img = np.empty((n, 32, 32, 3))
    for q, (ys, xs) in enumerate([(slice(0, 16), slice(0, 16)), (slice(0, 16), slice(16, 32)),
                                  (slice(16, 32), slice(0, 16)), (slice(16, 32), slice(16, 32))]):
        img[:, ys, xs, :] = 40 + 170 * z[:, q, None, None, :]
    img += rng.normal(0, 8, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def _encoding_set(subject, ids, images, fmri, V):
    data = xr.DataArray(images, dims=("stimulus", "y", "x", "rgb"))
    return EncodingSet(subject=subject, nsd_id=ids, images=data, fmri=fmri,
                       hemisphere=np.array(["lh"] * (V // 2) + ["rh"] * (V - V // 2)))


@pytest.fixture(scope="module")
def subject():
    """A train set of 120 images and a test set of 40 whose 30 vertices respond linearly to the 12 quadrant
    colours; the test responses are returned apart (a scored split has fmri=None)."""
    rng = np.random.default_rng(7)
    n_train, n_test, V = 120, 40, 30
    z = rng.uniform(0, 1, (n_train + n_test, 4, 3))
    W = rng.normal(size=(12, V))
    Y = ((z.reshape(len(z), 12) - 0.5) @ W + 0.3 * rng.normal(size=(len(z), V))).astype(np.float32)
    ids = rng.choice(73_000, n_train + n_test, replace=False)
    images = _images(z, rng)
    train = _encoding_set("subj01", ids[:n_train], images[:n_train], Y[:n_train], V)
    test = _encoding_set("subj01", ids[n_train:], images[n_train:], None, V)
    feats = z.reshape(len(z), 12) + 0.05 * rng.normal(size=(len(z), 12))
    return train, test, Y[n_train:], ids, feats


def _mse(model, subject, seed=0):
    train, test, truth, *_ = subject
    model.fit(train, seed)
    pred = model.predict(test)
    assert pred.shape == truth.shape and pred.dtype == np.float32
    return float(((pred - truth) ** 2).mean())


def test_mean_response_is_the_training_mean(subject):
    from neuroharness.tasks.nsd.baselines import MeanResponse

    train, test, *_ = subject
    m = MeanResponse()
    m.fit(train, 0)
    pred = m.predict(test)
    np.testing.assert_allclose(pred, np.broadcast_to(train.fmri.astype(float).mean(0), pred.shape), atol=1e-7)
    assert m.n_parameters == 30 and describe(m) == {}


def test_pixels_and_features_models_beat_the_mean(subject, tmp_path):
    from neuroharness.tasks.nsd.baselines import FeaturesRidge, MeanResponse, PixelsPcaRidge

    floor = _mse(MeanResponse(), subject)
    pixels = PixelsPcaRidge(size=8, n_components=30)
    assert _mse(pixels, subject) < 0.3 * floor
    assert pixels.n_features == 8 * 8 * 3 and pixels.pca_components == 30
    grey = PixelsPcaRidge(size=8, grayscale=True, n_components=500)  # capped at the 64 grey pixels
    assert _mse(grey, subject) < floor and grey.pca_components == 64
    *_, ids, feats = subject
    path = tmp_path / "feats.npz"
    np.savez(path, nsd_id=ids, features=feats)
    model = FeaturesRidge(features=str(path))
    assert _mse(model, subject) < 0.3 * floor
    assert model.n_features == 12 and len(model.features_sha256) == 64


def test_hyperparameters_and_fitted_facts_are_recorded(subject):
    from neuroharness.tasks.nsd.baselines import PixelsPcaRidge

    model = PixelsPcaRidge(size=8, n_components=30, n_alphas=11, alpha_max=1e6)
    before = describe(model)
    assert before == {"alpha_min": 0.01, "alpha_max": 1e6, "n_alphas": 11, "cv_folds": 5, "size": 8,
                      "grayscale": False, "n_components": 30, "pca_random_state": 20200220, "batch_size": 64}
    model.fit(subject[0], 3)
    after = describe(model)
    fitted = {k: v for k, v in after.items() if before.get(k, object()) != v}
    assert set(fitted) == {"alpha_median", "alpha_low_share", "alpha_high_share", "n_features", "pca_components"}
    assert 0.01 <= fitted["alpha_median"] <= 1e6 and model.n_parameters == 31 * 30
    # one seed, one result: a second fit with seed 3 predicts bit-identically
    again = PixelsPcaRidge(size=8, n_components=30, n_alphas=11, alpha_max=1e6)
    again.fit(subject[0], 3)
    np.testing.assert_array_equal(again.predict(subject[1]), model.predict(subject[1]))


def test_alexnet_model_beats_the_mean(subject, weights, tmp_path):
    from neuroharness.tasks.nsd.baselines import AlexnetPcaRidge, MeanResponse

    train, test, truth, *_ = subject
    part = (_encoding_set("subj01", train.nsd_id[:60], train.images.values[:60], train.fmri[:60], 30),
            _encoding_set("subj01", test.nsd_id[:20], test.images.values[:20], None, 30), truth[:20])
    floor = _mse(MeanResponse(), part)
    model = AlexnetPcaRidge(weights=str(weights), n_components=10, batch_size=40)
    assert _mse(model, part) < 0.5 * floor
    assert model.n_features == 205_672 and model.pca_components == 10 and len(model.weights_sha256) == 64
    # the same fit with the training features in a temporary file instead of memory; the file is removed
    small = _encoding_set("subj02", train.nsd_id[:16], train.images.values[:16], train.fmri[:16], 30)
    few = _encoding_set("subj02", test.nsd_id[:4], test.images.values[:4], None, 30)
    in_memory = AlexnetPcaRidge(weights=str(weights), n_components=3)
    on_disk = AlexnetPcaRidge(weights=str(weights), n_components=3, memory_gb=0, scratch_dir=str(tmp_path))
    for m in (in_memory, on_disk):
        m.fit(small, 0)
    np.testing.assert_allclose(on_disk.predict(few), in_memory.predict(few), rtol=1e-4, atol=1e-4)
    assert list(tmp_path.iterdir()) == []


def test_alexnet_scratch_space_is_reserved_first(subject, weights, tmp_path, monkeypatch):
    import errno
    import os

    from neuroharness.errors import NeuroharnessError
    from neuroharness.tasks.nsd.baselines import AlexnetPcaRidge

    def full(fd, offset, size):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full, raising=False)
    train = subject[0]
    model = AlexnetPcaRidge(weights=str(weights), memory_gb=0, scratch_dir=str(tmp_path))
    with pytest.raises(NeuroharnessError, match=rf"subj01: cannot reserve 0.1 GB .* in {tmp_path} .*No space left"
                                                r".*scratch_dir=.*memory_gb=1"):
        model.fit(train, 0)
    assert list(tmp_path.iterdir()) == []


def test_features_file_checks(subject, tmp_path):
    from neuroharness.tasks.nsd.baselines import FeaturesRidge

    train, test, _, ids, feats = subject

    def fit(path):
        FeaturesRidge(features=str(path)).fit(train, 0)

    with pytest.raises(UsageError, match="features-ridge needs `features`"):
        FeaturesRidge().fit(train, 0)
    with pytest.raises(DataFormatError, match="nope.npz: not found"):
        fit(tmp_path / "nope.npz")
    (tmp_path / "f.csv").write_text("nsd_id,a\n1,2\n")
    with pytest.raises(DataFormatError, match="unsupported format '.csv'"):
        fit(tmp_path / "f.csv")
    (tmp_path / "evil.npz").write_bytes(pickle.dumps({"nsd_id": ids, "features": feats}))
    with pytest.raises(DataFormatError, match="evil.npz: the file is a Python pickle"):
        fit(tmp_path / "evil.npz")
    np.savez(tmp_path / "noarr.npz", nsd_id=ids, feats=feats)
    with pytest.raises(DataFormatError, match=r"no array 'features'; found \['feats', 'nsd_id'\]"):
        fit(tmp_path / "noarr.npz")
    dup = ids.copy()
    dup[5] = dup[2]
    np.savez(tmp_path / "dup.npz", nsd_id=dup, features=feats)
    with pytest.raises(DataFormatError, match=rf"nsd_id {dup[2]} appears twice \(rows 2 and 5\)"):
        fit(tmp_path / "dup.npz")
    bad = feats.copy()
    bad[9, 4] = np.inf
    np.savez(tmp_path / "inf.npz", nsd_id=ids, features=bad)
    with pytest.raises(DataFormatError, match=rf"row 9 \(nsd_id {ids[9]}\) holds NaN or infinite"):
        fit(tmp_path / "inf.npz")
    np.savez(tmp_path / "range.npz", nsd_id=np.r_[ids[:-1], 73_000], features=feats)
    with pytest.raises(DataFormatError, match="has nsd_id 73000, outside 0..72999"):
        fit(tmp_path / "range.npz")
    np.savez(tmp_path / "float_ids.npz", nsd_id=ids.astype(float), features=feats)
    with pytest.raises(DataFormatError, match="nsd_id has dtype float64, expected integers"):
        fit(tmp_path / "float_ids.npz")
    # rows missing for some training images: the message names the subject, the split and the ids
    np.savez(tmp_path / "partial.npz", nsd_id=ids[3:], features=feats[3:])
    with pytest.raises(DataFormatError, match=r"no row for 3 of the 120 training images of subj01 \(nsd_id "):
        fit(tmp_path / "partial.npz")
    # ... or for images to predict
    np.savez(tmp_path / "train_only.npz", nsd_id=ids[:120], features=feats[:120])
    model = FeaturesRidge(features=str(tmp_path / "train_only.npz"))
    model.fit(train, 0)
    with pytest.raises(DataFormatError, match="no row for 40 of the 40 images to predict of subj01"):
        model.predict(test)
    # parquet: nsd_id plus one numeric column per feature; the same fit as the npz
    import pandas as pd

    table = pd.DataFrame(feats, columns=[f"f{i}" for i in range(12)]).assign(nsd_id=ids)
    table.to_parquet(tmp_path / "f.parquet")
    a, b = FeaturesRidge(features=str(tmp_path / "f.parquet")), FeaturesRidge(features=str(tmp_path / "ok.npz"))
    np.savez(tmp_path / "ok.npz", nsd_id=ids, features=feats)
    for m in (a, b):
        m.fit(train, 0)
    np.testing.assert_allclose(a.predict(test), b.predict(test), rtol=1e-6)
    table.assign(f3="x").to_parquet(tmp_path / "text.parquet")
    with pytest.raises(DataFormatError, match=r"column 'f3' has dtype \w+, expected numbers"):
        fit(tmp_path / "text.parquet")
    # the file may not change between fit and predict
    np.savez(tmp_path / "ok.npz", nsd_id=ids, features=feats * 2)
    with pytest.raises(ValueError, match="ok.npz changed since the fit"):
        b.predict(test)
