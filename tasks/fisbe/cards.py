"""Card of the FISBe task (standard library only: read by every listing)."""
from __future__ import annotations

from ..card import DatasetRef, MetricSpec, ModelSpec, TaskCard

_PKG = "neuroharness.tasks.fisbe"

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


INSTANCE_SEGMENTATION = TaskCard(
    name="fisbe-instance-segmentation",
    version="1.0",
    title="Segment every neuron in FlyLight MCFO light microscopy (FISBe)",
    description=(
        "Given a three-colour multicolor-flip-out (MCFO) confocal volume of the fruit fly central nervous system "
        "(FlyLight, 0.44 um isotropic, about 400 x 700 x 700 voxels), output one instance per labeled neuron. "
        "Neurons are long, thin (a few voxels across) and branching; they cross and overlap, and their colour is "
        "the main cue that tells them apart. Scored with the FISBe metrics (clDice-based matching), after removing "
        "predicted instances of 800 voxels or fewer as in the benchmark's preset."),
    # fisbe 1.1: the same volumes and masks as 1.0 in the OME-NGFF layout with label images (issue 16); scores
    # do not change, the dataset checksum in records does
    datasets=(DatasetRef("fisbe", "1.1"),),
    split=(
        "as released (``sample_list_per_split.txt``, grouped by transgenic line): completely labeled 18 train / 5 "
        "val / 7 test volumes, partly labeled 43 / 12 / 16. Scores are computed on the test volumes of both subsets "
        "(validation: ``split=\"val\"``); partly labeled volumes are scored in partly mode (unmatched predictions "
        "lying mainly on unlabeled voxels are not false positives). The main score is S of the combined set: the "
        "unweighted mean of the completely and partly sets' S (FS/FM summed, tp and clDice_TP pooled); when the "
        "prepared store holds only one subset, that subset's S."),
    inputs=("raw (3, Z, Y, X) uint16: the three MCFO colour channels (12-bit values), 0.44 um isotropic voxels; "
            "training and validation volumes come with their neurons' masks (the store's NGFF label images, read "
            "as an (N, Z, Y, X) stack by training_view().gt(sample))"),
    targets=("one instance per labeled neuron, as a (Z, Y, X) integer label image (0 = background) or a "
             "(N, Z, Y, X) stack of instance channels (overlapping neurons allowed)"),
    metrics=(
        MetricSpec("S", True, "0.5 avF1 + 0.5 C; combined set = mean of the completely and partly sets", 0.0, 1.0),
        MetricSpec("avF1", True, "F1 of greedy one-to-one clDice matching, mean over thresholds 0.1..0.9, counts pooled over volumes",
                   0.0, 1.0),
        MetricSpec("C", True, "coverage: mean over GT neurons of the skeleton fraction covered by the predictions assigned to it",
                   0.0, 1.0),
        MetricSpec("clDice_TP", True, "mean clDice of the true-positive matches at threshold 0.5", 0.0, 1.0),
        MetricSpec("tp", True, "true positives at clDice 0.5 / number of GT neurons", 0.0, 1.0),
        MetricSpec("FS", False, "false splits: extra predictions matched to a GT neuron (many-to-many, clRecall > 0.05)",
                   low=0.0),
        MetricSpec("FM", False, "false merges: extra GT neurons matched to a prediction (many-to-many, clRecall > 0.1)",
                   low=0.0),
        MetricSpec("completely/S", True, "S of the completely labeled test volumes", 0.0, 1.0),
        MetricSpec("partly/S", True, "S of the partly labeled test volumes (partly mode)", 0.0, 1.0),
    ),
    main_metric="S",
    # 2: FS/FM follow the official evaluator's many-to-many matching (issue 11); scores made before differ
    evaluator_version="2",
    implementation=f"{_PKG}.instance_segmentation:FisbeInstanceSegmentation",
    models=(
        ModelSpec("threshold-cluster", f"{_PKG}.baselines:ThresholdClusterModel",
                  "no learning, CPU: blur + per-volume normalisation, foreground threshold, k-means on chromaticity of "
                  "foreground voxels with merged centres, 26-connected components per colour cluster, size filter (> 800)"),
        ModelSpec("unet-embedding", f"{_PKG}.baselines:UNetEmbeddingModel",
                  "small 3-D U-Net (foreground + 4-D embedding, discriminative loss) trained on random patches; "
                  "foreground embeddings clustered, 26-connected components, size filter (> 800)"),
    ),
    seeds=(0, 1, 2),
    chance={"S": "0 (an empty prediction scores S = 0: no match and no coverage)", "FS": "0", "FM": "0"},
    submission=(
        "one array per test sample, named by the sample id, in one .npz (no pickle), .zarr folder or zipped Zarr "
        "(.zip): a (Z, Y, X) integer label image (0 = background) or a (N, Z, Y, X) integer/bool stack of instance "
        "channels, (Z, Y, X) = the sample's raw volume shape; no float dtypes, no negative labels. "
        "`neuroharness tasks template fisbe-instance-segmentation ids.parquet` lists the samples and shapes; "
        "neuroharness.tasks.fisbe.instance_segmentation.write_predictions(path, {sample: array}) writes the file"
    ),
    references=_reference_lines(),
)

CARDS = (INSTANCE_SEGMENTATION,)
