"""Cards of the C. elegans tasks (standard library only: read by every listing)."""
from __future__ import annotations

from ..card import DatasetRef, MetricSpec, ModelSpec, TaskCard

_PKG = "neuroharness.tasks.celegans"

STRUCTURE_FUNCTION = TaskCard(
    name="celegans-structure-function",
    version="1.0",
    title="Predict signal propagation from C. elegans anatomy",
    description=(
        "For directed pairs (stimulated j -> responding i) measured in the wild-type signal-propagation atlas "
        "(Randi et al. 2023), predict (a) whether the response is significant (q < 0.05) and (b) its amplitude "
        "(ΔF/F0), from the connectome and anything else that is not the atlas's test pairs."),
    datasets=(DatasetRef("celegans-funatlas", "1.0"), DatasetRef("celegans-connectome", "1.0")),
    split=(
        "pairs are grouped by the *class* of the stimulated neuron (so a left neuron and its right partner fall on "
        "the same side); a class goes to test if sha256(class) mod 10 is 0 or 1, to validation if it is 2, else to "
        "train. Test pairs thus share no stimulated neuron (nor its bilateral partner) with training pairs. "
        "Self-pairs (i = j) and unmeasured pairs are excluded. "),
    inputs="celegans-connectome (all annotations, neuron types and positions); training and validation pairs with targets",
    targets="significant = q < 0.05 (wt strain); amplitude = dFF (ΔF/F0), responding neuron i to stimulated neuron j",
    metrics=(
        MetricSpec("roc_auc", True, "ROC-AUC of `score` for significant responses over test pairs", 0.0, 1.0),
        MetricSpec("average_precision", True, "average precision of `score` for significant responses over test pairs",
                   0.0, 1.0),
        MetricSpec("spearman", True, "Spearman rho between `amplitude` and dFF over test pairs", -1.0, 1.0),
    ),
    main_metric="roc_auc",
    implementation=f"{_PKG}.structure_function:CelegansStructureFunction",
    models=(
        ModelSpec("chance", f"{_PKG}.structure_function_baselines:ChanceModel", "uniform random scores (chance level)"),
        ModelSpec("connectome-direct", f"{_PKG}.structure_function_baselines:DirectConnectomeModel",
                  "chemical + gap-junction weight j->i (Cook 2019)"),
        ModelSpec("connectome-multihop", f"{_PKG}.structure_function_baselines:MultiHopModel",
                  "truncated series of normalized adjacency powers, K and alpha tuned on train"),
        ModelSpec("gnn-link", f"{_PKG}.structure_function_gnn:GNNLinkModel",
                  "GraphSAGE encoder on the Cook 2019 connectome + pair MLP decoder (torch-geometric)"),
    ),
    seeds=(0, 1, 2),
    chance={"roc_auc": "0.5", "average_precision": "positive rate of the test pairs", "spearman": "0"},
    submission=(
        "one row per test pair: columns responding (str), stimulated (str) canonical neuron names, "
        "score (float, higher = more likely significant), amplitude (float, predicted dFF); "
        "as .npz (1-D arrays, no object dtype), .parquet, or .zarr (variables along one dim)"
    ),
    references=(
        "Randi F, Sharma AK, Dvali S, Leifer AM (2023) Nature 623:406, doi:10.1038/s41586-023-06683-4",
        "Cook SJ et al. (2019) Nature 571:63, doi:10.1038/s41586-019-1352-7",
    ),
)

FORECAST = TaskCard(
    name="celegans-forecast",
    version="1.0",
    title="Forecast C. elegans whole-brain calcium activity",
    description=(
        "From a context of 200 samples (66.6 s at dt = 0.333 s) of every labeled neuron of a worm, predict the next "
        "k samples, k = 1 (main score) and k = 10 (3.3 s). Scored on labeled neurons only."),
    datasets=(DatasetRef("celegans-activity", "1.0"), DatasetRef("celegans-connectome", "1.0")),
    split=(
        "Splits (both reported in every record): - ``worms``: held-out worms, stratified by source dataset. Within "
        "each source, worms are ordered by sha256 of their id; the first ceil(20%) are test, the next ceil(10%) "
        "validation (if the source has at least 3 worms), the rest train. Test windows come from the whole recording "
        "of test worms. - ``time``: within every worm, the first half is for training (its last 10% for validation) "
        "and the second half is test. Test windows start every 50 samples (the first at the start of the test "
        "stretch); each covers context + 10 samples."),
    inputs="200 samples of the normalized calcium trace of every neuron (NaN -> 0 where unlabeled) and the labeled mask",
    targets="the next 1 and 10 samples of every labeled neuron",
    metrics=(
        MetricSpec("worms/skill_h1", True, "1 - MSE/MSE_naive at k = 1 on held-out worms (naive = copy last context sample)",
                   high=1.0),
        MetricSpec("worms/skill_h10", True, "the same over the next 10 samples", high=1.0),
        MetricSpec("time/skill_h1", True, "1 - MSE/MSE_naive at k = 1 on the second half of every worm", high=1.0),
        MetricSpec("worms/mse_h1", False, "MSE over labeled neurons, k = 1, held-out worms (z-scored units squared)",
                   low=0.0),
    ),
    main_metric="worms/skill_h1",
    implementation=f"{_PKG}.forecast:CelegansForecast",
    models=(
        ModelSpec("naive", f"{_PKG}.forecast_baselines:NaiveModel", "copy the last context sample"),
        ModelSpec("linear-ar", f"{_PKG}.forecast_baselines:LinearARModel",
                  "ridge linear autoregression on 3 lags of all neurons"),
        ModelSpec("lstm", f"{_PKG}.forecast_baselines:LSTMModel",
                  "LSTM (128 units) on values and mask, next-step change, rolled out"),
        ModelSpec("connectome-linear", f"{_PKG}.forecast_baselines:ConnectomeLinearModel",
                  "linear AR where neuron i reads only its Cook 2019 partners and itself"),
    ),
    seeds=(0, 1, 2),
    chance={"worms/skill_h1": "0 (the naive copy-last predictor)"},
    submission=(
        "an .npz (read without unpickling) with one entry per test window of the template (tasks template): "
        "1-D protocol (str), worm (str), start (int) and prediction (n_windows, 10, 302) float16/32/64, the "
        "next 10 samples of every neuron; rows in any order; finite on the neurons labeled in that worm, "
        "NaN allowed on the others (not scored); or register a model with fit(store, split, seed, connectome) "
        "and predict(context, mask, horizon)"
    ),
    references=("Simeon Q et al. (2024) arXiv:2411.12091 (dataset; NaivePredictor as the copy-last baseline)",),
)

CARDS = (STRUCTURE_FUNCTION, FORECAST)
