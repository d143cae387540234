"""Card of the NSD encoding task (standard library only: read by every listing)."""
from __future__ import annotations

from ..card import DatasetRef, MetricSpec, ModelSpec, TaskCard, TaskOption

_PKG = "neuroharness.tasks.nsd"

#: Subjects of the challenge, and the ``subject`` option's value for all eight.
SUBJECTS = tuple(f"subj{i:02d}" for i in range(1, 9))
ALL = "all"
#: The ``split`` option: the challenge's test images, or held-out training images.
SPLITS = ("official", "heldout")
#: The ``pooling`` option (the same names as ``neuroharness.metrics.encoding.POOLINGS``; a test checks).
POOLINGS = ("all-vertices", "per-subject-hemisphere")
DEFAULT_POOLING = "all-vertices"

ENCODING = TaskCard(
    name="nsd-encoding",
    version="1.0",
    title="Predict fMRI responses to natural scenes on the cortical surface (NSD, Algonauts 2023)",
    description=(
        "Given an image, predict the response of every vertex of the visual cortex (NSDGeneral plus RSC on the "
        "fsaverage surface, about 19,000 left + 20,500 right vertices) of one NSD subject, or of each of the "
        "eight: the Algonauts 2023 challenge, scored locally. Models are fitted per subject on the training "
        "images (responses: session-z-scored betas averaged over repeats) and predict the held-out images. "
        "Scores, per vertex over the scored images: Pearson r and, where a noise ceiling (NC) exists, the "
        "challenge's noise-normalized squared correlation (negative r set to 0, squared, divided by the NC, "
        "x 100, capped at 100), pooled as the option `pooling` says. The main metric is mean_pearson_r "
        "because it exists on both splits; the challenge's own number, median_nc_score, exists only on the "
        "official test split (the NC is computed for the challenge's test images and their repeats) and is "
        "reported there as a secondary metric. A vertex whose r is undefined (a constant prediction, as the "
        "mean-response baseline makes, or a constant response) counts as r = 0. Top challenge entries used "
        "NSD behavioural data and previous images as inputs, not only the current image; this task gives "
        "models the image alone."),
    datasets=(DatasetRef("nsd-algonauts2023", "1.0"),),
    split=(
        "Per subject. split=official: test = the challenge's test images (159, 293 or 395 per subject), which "
        "need their responses in the store (rebuilt from the NSD files, or supplied with the challenge release "
        "as test_split/test_fmri); the noise-normalized score is computed there. split=heldout (for stores "
        "without test responses): test = 10% of the training images, those with the smallest "
        "sha256('nsd-encoding/heldout/<nsd_id>') (round(n/10), at least 2); the challenge's test images are "
        "not used. Validation (both splits): 10% of the remaining training images, smallest "
        "sha256('nsd-encoding/val/<nsd_id>'); models train on the rest. The hash does not involve the subject, "
        "so an image seen by several subjects tends to fall on the same side for all of them. Scored items are "
        "(subject, nsd_id) in store order (training rows in challenge order, then test rows); split_sha256 "
        "digests them."),
    inputs=("the stimulus images, (y, x, 3) uint8 RGB (NSD's 425 x 425 COCO crops), lazily as an xarray "
            "DataArray; for training, the (n, V) float32 responses of the training images; the vertex order "
            "(hemisphere lh then rh)"),
    targets="(n, V) float32 responses of the scored images: every vertex of both hemispheres of the subject",
    metrics=(
        MetricSpec("mean_pearson_r", True, "Pearson r per vertex over the scored images (undefined r = 0), pooled "
                   "mean (see the pooling option); both splits", -1.0, 1.0),
        MetricSpec("median_pearson_r", True, "pooled median of the per-vertex Pearson r", -1.0, 1.0),
        MetricSpec("median_nc_score", True, "pooled median noise-normalized squared correlation in percent (the "
                   "challenge's score): min(100, max(r, 0)^2 / NC x 100), NC = 0 -> 1e-14; official test "
                   "split only", 0.0, 100.0),
        MetricSpec("mean_nc_score", True, "pooled mean noise-normalized squared correlation in percent; official "
                   "test split only", 0.0, 100.0),
        MetricSpec("median_r2", True, "pooled median of max(r, 0)^2", 0.0, 1.0),
        MetricSpec("mean_r2", True, "pooled mean of max(r, 0)^2", 0.0, 1.0),
    ),
    main_metric="mean_pearson_r",
    implementation=f"{_PKG}.encoding:NsdEncoding",
    models=(
        ModelSpec("mean-response", f"{_PKG}.baselines:MeanResponse",
                  "the floor: every vertex's mean training response, whatever the image (r undefined -> 0)"),
        ModelSpec("pixels-pca-ridge", f"{_PKG}.baselines:PixelsPcaRidge",
                  "downsampled pixels -> standardize -> PCA -> ridge, a per-vertex penalty chosen by cross-validation"),
        ModelSpec("alexnet-pca-ridge", f"{_PKG}.baselines:AlexnetPcaRidge",
                  "the devkit baseline: ImageNet AlexNet layers (maxpool1..fc8) -> standardize -> PCA 100 -> "
                  "regression; weights from the torch hub cache or a path (never downloaded by the harness)"),
        ModelSpec("features-ridge", f"{_PKG}.baselines:FeaturesRidge",
                  "the user's own precomputed image features (a file mapping nsd_id to a vector: CLIP, DINO, ...) "
                  "-> ridge with a per-vertex penalty chosen by cross-validation"),
    ),
    seeds=(0, 1, 2),
    chance={"mean_pearson_r": "0 (predictions unrelated to the images; the mean-response floor scores exactly 0)",
            "median_pearson_r": "0"},
    submission=(
        "one .npz (numpy.savez, no pickle), .zarr folder or zipped Zarr (.zip) holding one float32/float64 array "
        "per scored subject and hemisphere, named <subject>_<hemisphere> (subj01_lh, subj01_rh, ...), of shape "
        "(stimuli, vertices): rows in the order of the template's rows of that subject (`neuroharness tasks "
        "template nsd-encoding ids.parquet --option subject=...`: subject, nsd_id, split_row), columns the "
        "subject's vertices of that hemisphere in store order; finite values. "
        "neuroharness.tasks.nsd.encoding.write_predictions(path, {name: array}) writes the file"),
    references=(
        "Allen EJ, St-Yves G, Wu Y, et al. (2022) A massive 7T fMRI dataset to bridge cognitive neuroscience and "
        "artificial intelligence. Nature Neuroscience 25:116-126, doi:10.1038/s41593-021-00962-x",
        "Gifford AT, Lahner B, Saba-Sadiya S, Vilas MG, Lascelles A, Oliva A, Kay K, Roig G, Cichy RM (2023) The "
        "Algonauts Project 2023 Challenge: How the Human Brain Makes Sense of Natural Scenes. arXiv:2301.03198; "
        "devkit github.com/gifale95/algonauts_2023 (metric: code/02_baseline_encoding_model/03_test_encoding.py)",
        "Challenge leaderboard (2023-08-10, https://algonautsproject.com/2023/): huze 70.85, hosseinadeli 63.52, "
        "UARK-SUNY-Albany 61.57 (median noise-normalized score over the 8 subjects; pooling not documented; the top "
        "entries used inputs beyond the image)",
    ),
    options={
        "subject": TaskOption("subj01", "the subject scored (a model is fitted per subject); 'all': the eight, "
                              "pooled as the pooling option says", SUBJECTS + (ALL,)),
        "split": TaskOption("official", "official: the challenge's test images (needs their responses in the store: "
                            "the NSD files, or a release with test_split/test_fmri); heldout: 10% of the training "
                            "images (any store; no noise ceiling, so no noise-normalized score)", SPLITS),
        "pooling": TaskOption(DEFAULT_POOLING, "how per-vertex values become one number: all-vertices (one median "
                              "or mean over every scored vertex of every subject and hemisphere) or "
                              "per-subject-hemisphere (within each subject and hemisphere, then the mean of those); "
                              "the challenge's choice is not documented", POOLINGS),
    },
)

CARDS = (ENCODING,)
