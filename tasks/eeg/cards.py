"""Card of the schizophrenia EEG task (standard library only: read by every listing)."""
from __future__ import annotations

from ..card import DatasetRef, MetricSpec, ModelSpec, TaskCard, TaskOption

_PKG = "neuroharness.tasks.eeg"

#: The datasets (the ``dataset`` option; with protocol=cross-site the other one is the training site).
DATASETS = ("nszed", "repod-schizophrenia")
PROTOCOLS = ("within", "cross-site")
CVS = ("stratified-group-kfold", "loso")
#: Subject-level decision threshold on the mean window probability (>= it: "patient").
THRESHOLD = 0.5

_REFERENCES = (
    "Olateju EO, Ayodele KP, Mosaku SK (2023) Nigerian Schizophrenia EEG Dataset (NSzED) Towards Data-Driven "
    "Psychiatry in Africa. arXiv:2311.18484",
    "Olejarczyk E, Jernajczyk W (2017) Graph-based analysis of brain connectivity in schizophrenia. PLoS ONE "
    "12(11):e0188629, doi:10.1371/journal.pone.0188629; data: RepOD doi:10.18150/repod.0107441",
    "Oh SL, Vicnesh J, Ciaccio EJ, Yuvaraj R, Acharya UR (2019) Deep convolutional neural network model for "
    "automated diagnosis of schizophrenia using EEG signals. Applied Sciences 9(14):2870, doi:10.3390/app9142870 "
    "(RepOD: 98.07% with a non-subject-based split, 81.26% subject-wise)",
    "Aydemir E, et al. (2022) Healthcare, PMC9027158: CGP17Pat features + INCA selection + kNN (RepOD: 99.91% "
    "with 10-fold CV over segments, 84.33% leave-one-subject-out)",
    "Shoeibi A, et al. (2021) Frontiers in Neuroinformatics: CNN-LSTM on 25 s frames (99.25%; the split appears "
    "to be segment-level: uncertain)",
    "Schirrmeister RT, Springenberg JT, Fiederer LDJ, et al. (2017) Deep learning with convolutional neural "
    "networks for EEG decoding and visualization. Human Brain Mapping 38(11):5391-5420, doi:10.1002/hbm.23730 "
    "(the shallow ConvNet, 'ShallowFBCSPNet', re-implemented in tasks/eeg/shallow.py)",
    "Barachant A, Bonnet S, Congedo M, Jutten C (2013) Classification of covariance matrices using a Riemannian-"
    "based kernel for BCI applications. Neurocomputing 112:172-178, doi:10.1016/j.neucom.2012.12.039 (tangent "
    "space; implemented by pyriemann)",
    "Jayaram V, Barachant A (2018) MOABB: trustworthy algorithm benchmarking for BCIs. J Neural Eng 15:066011 "
    "(CrossSubjectEvaluation: subject-wise splits)",
)

SCHIZOPHRENIA = TaskCard(
    name="eeg-schizophrenia",
    version="1.0",
    title="Tell patients with schizophrenia from healthy controls by their EEG, one prediction per subject "
          "(NSzED, RepOD)",
    description=(
        "Patient vs control, one prediction per SUBJECT. Each recording of the chosen condition (resting state by "
        "default) is cut into fixed-length windows (options window_s, stride_s; default 4 s windows with a 4 s "
        "stride, i.e. no overlap) at the store's common rate; a recording of n samples gives floor((n - w) / s) + 1 "
        "windows of w samples every s samples, and the last partial window is dropped. Models classify windows; "
        "the task averages the window probabilities of each subject (all its windows, over all its recordings and "
        "sessions of the condition: the mean of window probabilities, not a vote) and a subject whose mean is "
        ">= 0.5 is called a patient. "
        "Why subject-wise: the diagnosis is a property of the subject, not of a window. When windows of one "
        "subject land on both sides of a split, a model can recognise the subject (individual spectra, electrode "
        "impedances, session, device) instead of the disease. That is why segment-wise evaluations on RepOD "
        "report 98-99% accuracy (Oh et al. 2019: 98.07%; Aydemir et al. 2022: 99.91%; Shoeibi et al. 2021: "
        "99.25%, apparently segment-level) while the same methods score 81-84% when whole subjects are held out "
        "(Oh et al.: 81.26% subject-wise; Aydemir et al.: 84.33% leave-one-subject-out). Segment-wise numbers are "
        "not comparable with this task and are not targets. Here every split is by subject (all windows, "
        "recordings and sessions of a subject are in one fold) and the harness refuses a split that puts a "
        "subject's windows on both sides. "
        "Chance: the main score is subject-level balanced accuracy (the mean of sensitivity on patients and "
        "specificity on controls), whose chance level is 0.5 whatever the class balance. Plain accuracy is "
        "misleading with unbalanced groups: always answering 'patient' on NSzED's 37 patients and 22 controls "
        "gives 37/59 = 62.7% accuracy but 50% balanced accuracy (the majority baseline shows it). "
        "Protocols: within (one dataset; subject-wise stratified k-fold or leave-one-subject-out cross-validation; "
        "every subject is scored once, by the model of the fold that held it out) and cross-site (train on every "
        "subject of the other dataset, test on every subject of the chosen one: one fold; both datasets read, on "
        "the EEG channels every recording of both shares, in the standard 10-20 montage order; the sites differ "
        "in country, devices, reference and protocol, so this measures transfer to a new site)."),
    datasets=(DatasetRef("nszed", "1.0"), DatasetRef("repod-schizophrenia", "1.0")),
    split=(
        "Subjects, never windows. protocol=within, cv=stratified-group-kfold: the subjects of the condition are "
        "split into n_folds folds (default 5), stratified by group: within each group (patients, then controls) "
        "subjects are ordered by sha256('eeg-schizophrenia/folds/<fold_seed>/<subject>') and dealt to folds 0, "
        "1, ..., n_folds-1 in turn, the controls continuing where the patients stopped, so each fold holds "
        "floor or ceil of n/k of each group and the folds' sizes differ by at most one. The folds depend on "
        "fold_seed (default 0), never on the model seed: every model and seed sees the same folds. "
        "n_folds must not exceed the smaller group. cv=loso: one fold per subject (fold k = the k-th subject in "
        "sorted order; n_folds and fold_seed do not apply). Fold k's model is trained on the windows of the "
        "subjects of the other folds and predicts the subjects of fold k. protocol=cross-site: one fold (0): "
        "trained on all subjects of the other dataset, tested on all subjects of `dataset` (cv, n_folds, "
        "fold_seed do not apply). There is no validation split: a model that tunes itself must split its "
        "training windows by the `groups` (subject) it is given. Scored items: (fold, subject) of every subject "
        "of the condition, sorted by fold then subject; split_sha256 digests them."),
    inputs=("per fold, the training windows: X (n_windows, n_channels, n_times) float32 EEG in volts at the store's "
            "common rate (re each recording's reference, as stored), channels the shared canonical 10-20 names "
            "(info.ch_names), the 0/1 label of each window's subject (1 = patient) and its subject id (groups); "
            "then the test windows of the fold without labels"),
    targets="per subject, 1 = patient (schizophrenia), 0 = healthy control",
    metrics=(
        MetricSpec("balanced_accuracy", True, "subject-level balanced accuracy over all scored subjects pooled: "
                   "(sensitivity + specificity) / 2 of the decisions mean probability >= 0.5", 0.0, 1.0),
        MetricSpec("roc_auc", True, "subject-level ROC-AUC of the mean window probabilities (ties count 1/2)",
                   0.0, 1.0),
        MetricSpec("sensitivity", True, "share of patients called patients (recall of 'patient')", 0.0, 1.0),
        MetricSpec("specificity", True, "share of controls called controls (recall of 'control')", 0.0, 1.0),
        MetricSpec("accuracy", True, "share of subjects called right (depends on the class balance: compare with "
                   "majority_accuracy)", 0.0, 1.0),
    ),
    main_metric="balanced_accuracy",
    implementation=f"{_PKG}.diagnosis:EegSchizophrenia",
    models=(
        ModelSpec("majority", f"{_PKG}.baselines:Majority",
                  "the floor: every window gets the training share of patient subjects, so every subject is called "
                  "its fold's training majority: balanced accuracy exactly 0.5 when one group is the majority of "
                  "every training side (NSzED's 37/22); on balanced data (RepOD's 14/14) the majority flips "
                  "between folds against the held-out fold's balance and scores slightly below 0.5, a known "
                  "property of cross-validation"),
        ModelSpec("bandpower-logreg", f"{_PKG}.baselines:BandpowerLogreg",
                  "relative band power (delta 1-4, theta 4-8, alpha 8-13, beta 13-30, gamma 30-45 Hz, each over "
                  "1-45 Hz) per channel from Welch's PSD (mne.time_frequency.psd_array_welch, 2 s segments), "
                  "log10 -> StandardScaler -> LogisticRegression (scikit-learn)", {"C": 1.0}),
        ModelSpec("tangent-space-logreg", f"{_PKG}.baselines:TangentSpaceLogreg",
                  "spatial covariance per window (pyriemann Covariances('oas')) -> Riemannian tangent space at the "
                  "training mean (TangentSpace('riemann')) -> LogisticRegression", {"C": 1.0}),
        ModelSpec("shallow-convnet", f"{_PKG}.shallow:ShallowConvNet",
                  "shallow ConvNet after Schirrmeister et al. 2017 (ShallowFBCSPNet: temporal conv, spatial conv, "
                  "batch norm, square, mean pool, log, dropout, linear), our own torch code (braindecode is not "
                  "used), trained on CPU with AdamW, single-threaded and seeded",
                  {"epochs": 8, "batch_size": 32, "lr": 1e-3}),
    ),
    seeds=(0, 1, 2),
    chance={
        "balanced_accuracy": "0.5 (any constant or random decision; the majority baseline scores exactly 0.5)",
        "roc_auc": "0.5 (a random probability). Pooled over folds, a model constant within each fold is not at "
                   "0.5: the majority baseline's training share of patients is lower in folds that hold out a "
                   "patient, which ranks controls first (ROC-AUC 0 under loso)",
        "accuracy": "the share of the larger group (majority_accuracy in the record): 37/59 = 0.627 on NSzED, "
                    "0.5 on RepOD's 14/14",
    },
    submission=(
        "a table (.parquet or .npz of 1-D arrays, through the shared checker) with one row per scored subject: "
        "fold (int: the fold whose model predicts it, as in the template), subject (str), probability (float in "
        "[0, 1]: probability of 'patient', the mean over the subject's windows if you follow the card). "
        "`neuroharness tasks template eeg-schizophrenia ids.parquet [--option ...]` writes the ids; "
        "neuroharness.tasks.eeg.diagnosis.write_predictions(path, fold, subject, probability) writes a file. "
        "A missing, extra or repeated subject, a subject in another fold than the template's, NaN or a "
        "probability outside [0, 1] are errors naming the row and subject."),
    references=_REFERENCES,
    options={
        "dataset": TaskOption("nszed", "the dataset scored: protocol=within reads only it; protocol=cross-site "
                              "tests on it and trains on the other one", DATASETS),
        "protocol": TaskOption("within", "within: subject-wise cross-validation inside `dataset`; cross-site: "
                               "train on the other dataset, test on `dataset`, on the channels both share "
                               "(one fold)", PROTOCOLS),
        "cv": TaskOption("stratified-group-kfold", "protocol=within: stratified-group-kfold (n_folds folds of "
                         "subjects, stratified by group) or loso (leave one subject out)", CVS),
        "n_folds": TaskOption("5", "number of folds of cv=stratified-group-kfold (an integer >= 2, at most the "
                              "number of subjects of the smaller group)"),
        "fold_seed": TaskOption("0", "seed of the fold assignment (an integer >= 0): part of the split, fixed "
                                "across models and model seeds"),
        "condition": TaskOption("rest", "the recording condition whose windows are used (rest, arithmetic, "
                                "auditory-oddball, auditory-steady-state: those the store holds)"),
        "window_s": TaskOption("4", "window length in seconds (a positive number; a whole number of samples at "
                               "the store's common rate)"),
        "stride_s": TaskOption("4", "step between window starts in seconds (a positive number; a whole number of "
                               "samples; < window_s overlaps windows)"),
    },
)

CARDS = (SCHIZOPHRENIA,)
