"""The model interface of every task family, in one place.

A model is whatever its factory returns (``factory(**hyperparameters)``): an
unfitted object with the two methods its family's task calls. The task passes
it only the training view (:meth:`~neuroharness.tasks.base.Task.training_view`
returns the same objects, for use outside a run), never test targets.
``fit`` returns the fitted model (usually ``self``). An optional integer
attribute ``n_parameters`` (read after ``fit``) goes into records.

=============================== ============================= ==========================================
task                            protocol                      training view (``task.training_view()``)
=============================== ============================= ==========================================
celegans-structure-function     :class:`StructureFunctionModel` ``StructureFunctionTraining``
celegans-forecast               :class:`ForecastModel`        ``ForecastTraining``
vesselgraph-link-prediction     :class:`LinkModel`            ``LinkData`` (``LinkSplit.model_view``)
vesselgraph-vessel-classification :class:`VesselModel`        ``VesselData.without_test_labels()``
fisbe-instance-segmentation     :class:`FisbeModel`           ``StoreData.without_test()``
nsd-encoding                    :class:`EncodingModel`        ``NsdTrainingView`` (``.train(subject)``, ``.val(subject)``)
eeg-schizophrenia               :class:`WindowClassifier`     ``EegTrainingView`` (``.fold(k)``: X, y, groups, info)
=============================== ============================= ==========================================

A model written outside the repository is registered through the entry-point
group ``neuroharness.models`` (see :mod:`neuroharness.tasks.plugins`).

This module imports only the standard library at run time; the data types
named in the signatures are imported for type checkers only.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import xarray as xr

    from .celegans.forecast import ForecastSplit
    from .celegans.structure_function import Inputs, Pairs
    from .celegans.windows import RaggedActivity
    from .eeg.data import EegInfo
    from .fisbe.instance_segmentation import StoreData
    from .nsd.data import EncodingSet
    from .vesselgraph.link_prediction import LinkData
    from .vesselgraph.vessel_classification import VesselData


@runtime_checkable
class StructureFunctionModel(Protocol):
    """``celegans-structure-function``.

    ``fit(inputs, train, val, seed)``: ``inputs`` the neuron names and the whole
    connectome (:class:`~.celegans.structure_function.Inputs`), ``train`` and
    ``val`` :class:`~.celegans.structure_function.Pairs` with targets
    (``responding``, ``stimulated`` int indices into ``inputs.neurons``;
    ``significant`` bool, ``amplitude`` float).
    ``predict(inputs, pairs)``: ``pairs`` without targets (the test or val
    pairs); returns ``{"score": (n,) float, "amplitude": (n,) float}`` aligned
    with ``pairs`` (higher score = more likely significant).
    """

    def fit(self, inputs: Inputs, train: Pairs, val: Pairs, seed: int) -> Any: ...

    def predict(self, inputs: Inputs, pairs: Pairs) -> dict[str, np.ndarray]: ...


@runtime_checkable
class ForecastModel(Protocol):
    """``celegans-forecast``; one copy is fitted per split protocol (``worms``, ``time``).

    ``fit(store, split, seed, connectome)``: ``store`` the activity store
    (:class:`~.celegans.windows.RaggedActivity`, read per worm), ``split`` the
    training view of one protocol (:class:`~.celegans.forecast.ForecastSplit`
    with train and val segments, no test segments), ``connectome`` the loaded
    ``celegans-connectome`` dataset.
    ``predict(context, mask, horizon)``: ``context`` (B, 200, N) float,
    ``mask`` (N,) bool labeled neurons; returns (B, horizon, N).
    """

    def fit(self, store: RaggedActivity, split: ForecastSplit, seed: int, connectome: xr.Dataset) -> Any: ...

    def predict(self, context: np.ndarray, mask: np.ndarray, horizon: int) -> np.ndarray: ...


@runtime_checkable
class LinkModel(Protocol):
    """``vesselgraph-link-prediction``.

    ``fit(data, seed)``: ``data`` a :class:`~.vesselgraph.link_prediction.LinkData`
    (node positions, training positives/negatives, validation
    positives/negatives; no test pairs).
    ``score(data, pairs)``: ``pairs`` (n, 2) int64 compact node ids; returns (n,)
    float, higher = more likely an edge.
    """

    def fit(self, data: LinkData, seed: int) -> Any: ...

    def score(self, data: LinkData, pairs: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class VesselModel(Protocol):
    """``vesselgraph-vessel-classification``.

    ``fit(data, seed)``: ``data`` a :class:`~.vesselgraph.vessel_classification.VesselData`
    whose test labels are -1 (``data.split`` holds the train/val/test vessel
    indices). ``predict(data, idx)``: (n,) int64 classes 0..2 of vessels ``idx``.
    """

    def fit(self, data: VesselData, seed: int) -> Any: ...

    def predict(self, data: VesselData, idx: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class FisbeModel(Protocol):
    """``fisbe-instance-segmentation``.

    ``fit(data, train, val, seed)``: ``data`` the store without test samples
    (:class:`~.fisbe.instance_segmentation.StoreData`: ``raw(sample)`` (3, Z, Y, X)
    uint16, ``gt(sample)`` (N, Z, Y, X) bool, ``subset(sample)``), ``train``/``val``
    sample ids. ``predict(raw)``: one (Z, Y, X) non-negative integer label image.
    """

    def fit(self, data: StoreData, train: Sequence[str], val: Sequence[str], seed: int) -> Any: ...

    def predict(self, raw: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class EncodingModel(Protocol):
    """``nsd-encoding``: one copy is fitted per subject.

    ``fit(train, seed)``: ``train`` an :class:`~.nsd.data.EncodingSet` of one subject's training images
    (``images`` lazy (n, y, x, rgb) uint8, ``fmri`` (n, V) float32 z-scored betas). ``predict(data)``: the
    (n, V) float32 responses to ``data``'s images, vertex columns in the order of ``data.hemisphere``.
    """

    def fit(self, train: EncodingSet, seed: int) -> Any: ...

    def predict(self, data: EncodingSet) -> np.ndarray: ...


@runtime_checkable
class WindowClassifier(Protocol):
    """``eeg-schizophrenia``: one deep copy is fitted per fold, on that fold's training windows only.

    ``fit(X, y, groups, info, seed)``: ``X`` (n_windows, n_channels, n_times) float32 EEG in volts (the
    store's common rate; channels in the order of ``info.ch_names``), ``y`` (n_windows,) int 0/1 (1 =
    patient: the window's subject's diagnosis), ``groups`` (n_windows,) str the subject of each window
    (for subject-wise inner validation), ``info`` an :class:`~.eeg.data.EegInfo` (``sfreq`` Hz,
    ``ch_names``). ``predict_proba(X)``: (n_windows,) float probability of "patient" per window; the
    task averages them per subject.
    """

    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray, info: EegInfo, seed: int) -> Any: ...

    def predict_proba(self, X: np.ndarray) -> np.ndarray: ...


#: The protocol a model of each task follows.
BY_TASK: dict[str, type] = {
    "celegans-structure-function": StructureFunctionModel,
    "celegans-forecast": ForecastModel,
    "vesselgraph-link-prediction": LinkModel,
    "vesselgraph-vessel-classification": VesselModel,
    "fisbe-instance-segmentation": FisbeModel,
    "nsd-encoding": EncodingModel,
    "eeg-schizophrenia": WindowClassifier,
}

__all__ = ["BY_TASK", "EncodingModel", "FisbeModel", "ForecastModel", "LinkModel", "StructureFunctionModel", "VesselModel",
           "WindowClassifier"]
