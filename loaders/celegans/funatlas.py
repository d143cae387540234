"""Randi et al. 2023 signal-propagation atlas -> dataset ``celegans-funatlas``.

The raw file is ``funatlas.h5`` from the ``wormneuroatlas`` 0.0.7.3 wheel
(Randi, Sharma, Dvali, Leifer 2023, Nature 623:406). It holds, per strain
(``wt``; ``unc31``, deficient in dense-core-vesicle release), 300 x 300 arrays
indexed ``[responding, stimulated]``:

- ``dFF``: mean response amplitude (ΔF/F0) of the responding neuron after
  optogenetic stimulation of the stimulated one; NaN where never measured;
- ``q``: false-discovery-rate q-value that the response is nonzero;
- ``q_eq``: q-value of the equivalence test that the response is zero;
- ``occ1``: number of stimulation events in which the pair was observed.

The atlas names AWC by its functional asymmetry (``AWCOF``/``AWCON``); the
anatomical datasets use left/right. We map ``AWCOF`` -> ``AWCL`` and
``AWCON`` -> ``AWCR`` (the mapping the atlas authors' own code leaves
commented out, ``wormneuroatlas/NeuroAtlas.py``): AWC ON/OFF identity is
stochastic per animal, so treat AWCL/AWCR in this dataset as AWC-OFF/AWC-ON.
CANL/CANR, absent from the atlas, are NaN with ``occ1`` = 0.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import xarray as xr

from neuroharness.errors import DataFormatError

from .. import pypi
from ..base import DatasetLoader
from . import canonical_name, cards, neurons

WORMNEUROATLAS = pypi.WheelSource(
    package="wormneuroatlas",
    version="0.0.7.3",
    urls=(
        "https://files.pythonhosted.org/packages/b3/dc/634b2a009739f692bad83325e5c0f8fd5b1323ac1a9ce11df7d4c8ac40db/wormneuroatlas-0.0.7.3-py3-none-any.whl",
    ),
    sha256="166289031784c9565f6b9205e30dc718bafbc092db3b46f1aef73d93dc4d1325",
    files={"wormneuroatlas/data/funatlas.h5": "53a99055667b853e1d3d6be573ec2613d38c9f6989f302ec38ecd38dd50c7975"},
)

STRAINS = ("wt", "unc31")
AWC = {"AWCOF": "AWCL", "AWCOFF": "AWCL", "AWCON": "AWCR"}
VARIABLES = {
    "dFF": ("float32", {"long_name": "mean response amplitude of responding neuron to stimulation", "units": "1",
                        "description": "ΔF/F0; NaN where the pair was not measured"}),
    "q": ("float64", {"long_name": "q-value of a nonzero response (FDR-corrected)", "units": "1"}),
    "q_eq": ("float64", {"long_name": "q-value of the equivalence test for a zero response", "units": "1"}),
    "occ1": ("int32", {"long_name": "number of stimulation events in which the pair was observed", "units": "1"}),
}


def read_funatlas(path: Path) -> xr.Dataset:
    """Read ``funatlas.h5`` onto the 302 canonical neurons; dims strain x responding x stimulated.

    Every dataset's kind, shape and dtype is checked from its header before it
    is read (a damaged header can declare terabytes), and its values after:
    q-values in [0, 1], amplitudes finite, counts whole and >= 0, NaN where
    the atlas has no measurement. Errors name the file and the dataset.
    """
    names = neurons().index.tolist()
    index = {n: i for i, n in enumerate(names)}
    try:
        fh = h5py.File(path, "r")
    except OSError as e:
        raise DataFormatError(f"{path}: not a readable HDF5 file ({e})") from None
    with fh:
        ids = _read_ids(path, fh, index)
        pos = np.array([index[n] for n in ids])
        out = {}
        for var, (dtype, attrs) in VARIABLES.items():
            fill = 0 if var == "occ1" else np.nan
            full = np.full((len(STRAINS), len(names), len(names)), fill, dtype=dtype)
            for s, strain in enumerate(STRAINS):
                full[s][np.ix_(pos, pos)] = _read_matrix(path, fh, f"{strain}/{var}", len(ids))
            out[var] = (("strain", "responding", "stimulated"), full, attrs)
    ds = xr.Dataset(out, coords={"strain": list(STRAINS), "responding": names, "stimulated": names})
    ds["strain"].attrs["description"] = "wt: wild type; unc31: unc-31 mutant, deficient in dense-core-vesicle (neuropeptide) release"
    return ds.chunk({"strain": 1})


def _dataset(path: Path, fh: h5py.File, key: str, expected: str) -> h5py.Dataset:
    try:
        obj = fh.get(key)
    except (OSError, RuntimeError, ValueError, KeyError, TypeError) as e:  # a damaged group or link
        raise DataFormatError(f"{path}: dataset {key!r} cannot be read ({type(e).__name__}: {e}); expected {expected}") from None
    if obj is None:
        raise DataFormatError(f"{path}: missing dataset {key!r} (expected {expected})")
    if not isinstance(obj, h5py.Dataset):
        raise DataFormatError(f"{path}: {key!r} is a {type(obj).__name__}, expected a dataset: {expected}")
    return obj


def _values(path: Path, ds: h5py.Dataset, key: str) -> np.ndarray:
    """The whole dataset; HDF5's errors on damaged chunks or unreadable types become DataFormatError."""
    try:
        return ds[()]
    except (OSError, RuntimeError, ValueError, TypeError, KeyError, MemoryError) as e:
        raise DataFormatError(f"{path}: dataset {key!r} cannot be read ({type(e).__name__}: {e}); "
                              "the file is damaged: download or copy it again") from None


def _read_ids(path: Path, fh: h5py.File, index: dict[str, int]) -> list[str]:
    expected = f"1-D, at most {len(index)} neuron names as bytes or strings"
    ds = _dataset(path, fh, "neuron_ids", expected)
    if ds.ndim != 1 or not 1 <= ds.shape[0] <= len(index) or ds.dtype.kind not in "SOU":
        raise DataFormatError(f"{path}: dataset 'neuron_ids' has shape {ds.shape} and dtype {ds.dtype}, expected {expected}")
    ids = []
    for i, x in enumerate(_values(path, ds, "neuron_ids").tolist()):
        if isinstance(x, bytes):
            try:
                x = x.decode("utf-8")
            except UnicodeDecodeError:
                raise DataFormatError(f"{path}: dataset 'neuron_ids', entry {i}: {x!r} is not UTF-8 text, "
                                      "expected a neuron name") from None
        if not isinstance(x, str):
            raise DataFormatError(f"{path}: dataset 'neuron_ids', entry {i}: {x!r}, expected a neuron name")
        ids.append(AWC.get(canonical_name(x), canonical_name(x)))
    unknown = [n for n in ids if n not in index]
    if unknown:
        raise DataFormatError(f"{path}: neuron_ids holds {unknown[:5]}, which are not canonical C. elegans neuron names")
    seen: dict[str, int] = {}
    for i, n in enumerate(ids):
        if n in seen:
            raise DataFormatError(f"{path}: dataset 'neuron_ids', entries {seen[n]} and {i}: neuron {n} twice, "
                                  "expected each neuron once")
        seen[n] = i
    return ids


def _read_matrix(path: Path, fh: h5py.File, key: str, n: int) -> np.ndarray:
    """Dataset ``key`` as an (n, n) array whose values pass the checks of its variable."""
    var = key.rsplit("/", 1)[1]
    expected = f"({n}, {n}) numbers, [responding, stimulated] of the {n} neuron_ids"
    ds = _dataset(path, fh, key, expected)
    if ds.shape != (n, n):
        raise DataFormatError(f"{path}: dataset {key!r} has shape {ds.shape}, expected {(n, n)}")
    if ds.dtype.kind not in "iuf":  # counts stored as floats are accepted when whole (checked below)
        raise DataFormatError(f"{path}: dataset {key!r} has dtype {ds.dtype}, expected "
                              f"{'integer counts' if var == 'occ1' else 'floating-point numbers'}")
    a = _values(path, ds, key)
    if var == "dFF":  # checked as stored (float32): a finite float64 beyond its range would become inf
        with np.errstate(over="ignore"):
            a = a.astype(VARIABLES[var][0])
    if var == "occ1":
        bad = ~np.isfinite(a) | (a < 0) | (a > np.iinfo(np.int32).max) | (a != np.floor(a)) if a.dtype.kind == "f" \
            else (a < 0) | (a > np.iinfo(np.int32).max)
        what = "whole numbers >= 0 (stimulation events)"
    elif var == "dFF":
        bad, what = np.isinf(a), "finite amplitudes, or NaN where the pair was not measured"
    else:
        bad, what = ~np.isnan(a) & ((a < 0) | (a > 1)), "q-values in [0, 1], or NaN where the pair was not measured"
    if bad.any():
        i, j = (int(x) for x in np.argwhere(bad)[0])
        raise DataFormatError(f"{path}: dataset {key!r}, entry [{i}, {j}]: {a[i, j].item()!r}, expected {what}")
    return a


class CelegansFunatlas(DatasetLoader):
    card = cards.FUNATLAS

    def fetch(self, source, only=None):
        if source is not None and Path(source).is_file() and Path(source).suffix == ".h5":
            return {"funatlas.h5": Path(source)}, f"local file {source}"
        paths, origin = WORMNEUROATLAS.materialize(source)
        return {"funatlas.h5": paths["wormneuroatlas/data/funatlas.h5"]}, origin

    def build(self, files):
        return read_funatlas(files["funatlas.h5"])

    def summary(self, ds):
        lines = []
        for s in ds.strain.values:
            sub = ds.sel(strain=s)
            measured = int(np.isfinite(sub.dFF).sum())
            sig = int((sub.q < 0.05).sum())
            lines.append(f"{s:<6} measured pairs {measured:>6}  q<0.05 {sig:>5}  max occ1 {int(sub.occ1.max())}")
        return lines
