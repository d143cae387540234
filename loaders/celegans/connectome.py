"""C. elegans connectome annotations -> dataset ``celegans-connectome``.

Raw files are those that the ``cect`` wheel (C. elegans Connectome Toolbox,
OpenWorm, 0.3.5) ships under ``cect/data``, the same files the homogenized
collection (Simeon et al. 2024, worm-data-preprocess) starts from. Each
annotation is read in its published layout, mapped onto the canonical 302
neurons and stacked along ``annotation``.

Homogenization rules (also in the store's attributes):

- Non-neuronal cells (muscles, end organs, glia, the excretory cell) are
  dropped; the synapse weight lost that way is counted per annotation.
- A neuron is *covered* by an annotation if it appears in the annotation at
  all (any synapse, any partner, or a row/column label of a matrix). Pairs
  with an uncovered neuron are NaN; covered pairs without contact are 0.
  So CANL/CANR are NaN in every annotation that never lists them.
- Chemical synapses are directed ``[pre, post]``; duplicate rows add up.
- Gap junctions are undirected: each unordered pair gets the mean of the
  nonzero values listed for either direction, stored in both directions
  (sources list a junction once or twice; summing would double-count).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import xarray as xr

from neuroharness.errors import DataFormatError

from .. import pypi
from ..base import DatasetLoader
from . import canonical_name, cards, neurons

CECT = pypi.WheelSource(
    package="cect",
    version="0.3.5",
    urls=(
        "https://files.pythonhosted.org/packages/13/07/932ef2f41dd4bb9abdd58678ccc15eff2a8df2a5bfb309787ddab06f184f/cect-0.3.5-py3-none-any.whl",
    ),
    sha256="ea47f7a6b0d69a8d0bd3b0ade4037b7cc32d31ad0449f823d7ec153d6fd25057",
    files={
        "cect/data/aconnectome_white_1986_whole.csv": "c8aac78756b71f6337629951e5f4211448e85d148f6db9b367b2cd0450bb403a",
        "cect/data/white_1986_n2u.csv": "6b63f6c0281b7bbc3be75fa3962e26caa020ddf3756bfc8dd9aad6577655fc16",
        "cect/data/white_1986_jsh.csv": "afe7a37a5bae62630a773b5e7815a408e3a72063caf0ed49ecc91e213077fb12",
        "cect/data/NeuronConnect.xls": "b5e32612967ff277c91ba37463bd03a85678bd8e65a4861abc6516323b6ff5f3",
        "cect/data/SI 5 Connectome adjacency matrices, corrected July 2020.xlsx": "1f4fdbf84746b69b49a8da0816f52787860ce349b638dce37924ba80f90c70c9",
        "cect/data/witvliet_2020_1 L1.xlsx": "e988deaa25d290786434a23131c1bf3f144e3ca07980233a6edbfcfb8d4d30be",
        "cect/data/witvliet_2020_2 L1.xlsx": "b365bdd96dea52c261c748232dd5d333671721865be1282f3b7efa806d010e2a",
        "cect/data/witvliet_2020_3 L1.xlsx": "d94d522af2a64177ebef0dea0951b2a252eb973bbed01a85a19aaafe4ff0244b",
        "cect/data/witvliet_2020_4 L1.xlsx": "10f16bd1f122288e9111acabccbf3fbd4811b861ce6e3293600d4eb5e42e4fbe",
        "cect/data/witvliet_2020_5 L2.xlsx": "011ebda64c379fa066254ddd5c8ff0ab89621e1e85e8d31ffc0b37b9602fc163",
        "cect/data/witvliet_2020_6 L3.xlsx": "9b342751812bf42733ae7c0de8b40f41ea0af0c5c560215d59525631b220b177",
        "cect/data/witvliet_2020_7 adult.xlsx": "d0fd2dd32adbe5f04ce90a2e5b74c01c9a831876527b0a2b8bd5b94edc86b037",
        "cect/data/witvliet_2020_8 adult.xlsx": "fdead89606257c1b26e57069fbe1de14c7696633b75b59b79e74c0bcc3497e62",
        "cect/data/CElegansNeuronTables.xls": "e6e2d51cd6a056c6058ec163bf6020d1a43a0a8d48719f09dddd8687c3956d74",
    },
)

SYNAPSES = "synapse count"
COOK_UNIT = "EM serial sections of connectivity (synapse number x size)"


@dataclass(frozen=True)
class Annotation:
    """One connectome annotation: where it is, how to read it, what it means."""

    name: str
    member: str  # file inside the cect wheel
    reader: Callable[[Path], tuple[pd.DataFrame, set[str]]]
    stage: str
    reference: str
    weight_unit: str = SYNAPSES


# -- readers: raw file -> (edges[pre, post, type, weight], covered names) ----
EDGE_COLUMNS = ["pre", "post", "type", "weight"]


def _check_columns(path: Path, found, expected, where: str = "header") -> None:
    found = [str(c).strip() for c in found]
    if found[: len(expected)] != list(expected):
        raise DataFormatError(f"{path}: {where} has columns {found}, expected {list(expected)} in this order")


def _numeric(path: Path, df: pd.DataFrame, col: str, line_offset: int) -> pd.Series:
    values = pd.to_numeric(df[col], errors="coerce")
    # a TRUE/FALSE cell would count as 1/0 synapses
    bad = (~np.isfinite(values.to_numpy(dtype=float)) | (values.to_numpy(dtype=float) < 0)
           | df[col].map(lambda v: isinstance(v, (bool, np.bool_))).to_numpy(dtype=bool))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataFormatError(
            f"{path}: line {i + line_offset}, column {col!r}: found {_plain(df[col].iloc[i])!r}, expected a finite number >= 0"
        )
    return values.astype(float)


def _plain(value):
    """A numpy scalar as the Python value it holds (messages show ``True``, not ``np.True_``)."""
    return value.item() if isinstance(value, np.generic) else value


def _blank(value) -> bool:
    return value is None or (not isinstance(value, str) and bool(pd.isna(value))) or str(value).strip() == ""


def _names(path: Path, df: pd.DataFrame, col: str, line_offset: int) -> pd.Series:
    """Column ``col`` as canonical names; an empty cell is an error (it would become a cell named 'nan')."""
    blank = df[col].map(_blank).to_numpy(dtype=bool)
    if blank.any():
        i = int(np.flatnonzero(blank)[0])
        raise DataFormatError(f"{path}: line {i + line_offset}, column {col!r}: found {_plain(df[col].iloc[i])!r}, "
                              "expected a cell name such as 'AVAL'")
    return df[col].map(canonical_name)


def _edges(path: Path, pre, post, kind, weight) -> tuple[pd.DataFrame, set[str]]:
    """Edges with weight > 0 and every name covered; ``pre`` and ``post`` are canonical names (:func:`_names`)."""
    edges = pd.DataFrame({"pre": pre, "post": post, "type": kind, "weight": weight}, columns=EDGE_COLUMNS)
    covered = set(edges["pre"]) | set(edges["post"])
    return edges[edges["weight"] > 0].reset_index(drop=True), covered


def _typed_edge_table(path: Path, df: pd.DataFrame, line_offset: int) -> tuple[pd.DataFrame, set[str]]:
    _check_columns(path, df.columns, ["pre", "post", "type", "synapses"])
    df = df.rename(columns=lambda c: str(c).strip())
    kinds = df["type"].astype(str).str.strip()
    bad = ~kinds.isin(["chemical", "electrical"])
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataFormatError(f"{path}: line {i + line_offset}, column 'type': found {kinds.iloc[i]!r}, expected 'chemical' or 'electrical'")
    return _edges(path, _names(path, df, "pre", line_offset), _names(path, df, "post", line_offset), kinds,
                  _numeric(path, df, "synapses", line_offset))


def read_tsv_edges(path: Path) -> tuple[pd.DataFrame, set[str]]:
    """Tab-separated ``pre post type synapses`` (White 1986 files in cect/WormWiring)."""
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise DataFormatError(f"{path}: empty file, expected the header pre<TAB>post<TAB>type<TAB>synapses") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as e:
        raise DataFormatError(f"{path}: not a readable tab-separated file: {e}") from None
    if len(df.columns) == 1:  # e.g. a header written with spaces instead of tabs
        raise DataFormatError(f"{path}: header {df.columns[0]!r} is not tab-separated; expected pre<TAB>post<TAB>type<TAB>synapses")
    df = df.apply(lambda s: s.str.strip())
    return _typed_edge_table(path, df, line_offset=2)


def read_witvliet_xlsx(path: Path) -> tuple[pd.DataFrame, set[str]]:
    """Witvliet et al. 2021 per-animal sheet: ``pre post type synapses``."""
    return _typed_edge_table(path, _read_excel(path, sheet_name=0, dtype={"pre": str, "post": str, "type": str}), line_offset=2)


def read_varshney_xls(path: Path) -> tuple[pd.DataFrame, set[str]]:
    """Varshney et al. 2011 ``NeuronConnect.xls``: ``Neuron 1, Neuron 2, Type, Nbr``.

    Type ``S``/``Sp`` is a chemical synapse from Neuron 1 to Neuron 2 (``Sp``:
    polyadic); ``R``/``Rp`` list the same synapses from the receiving side and
    are skipped; ``EJ`` is a gap junction; ``NMJ`` goes to muscle.
    """
    df = _read_excel(path, sheet_name="NeuronConnect.csv")
    _check_columns(path, df.columns, ["Neuron 1", "Neuron 2", "Type", "Nbr"])
    df = df.rename(columns=lambda c: str(c).strip())
    kinds = df["Type"].astype(str).str.strip()
    known = kinds.isin(["S", "Sp", "R", "Rp", "EJ", "NMJ"])
    if not known.all():
        i = int(np.flatnonzero(~known.to_numpy())[0])
        raise DataFormatError(f"{path}: line {i + 2}, column 'Type': found {kinds.iloc[i]!r}, expected one of S, Sp, R, Rp, EJ, NMJ")
    weight = _numeric(path, df, "Nbr", 2)
    one, two = _names(path, df, "Neuron 1", 2), _names(path, df, "Neuron 2", 2)
    covered = set(one) | set(two)
    keep = kinds.isin(["S", "Sp", "EJ"]).to_numpy()
    kind = np.where(kinds == "EJ", "electrical", "chemical")
    edges, _ = _edges(path, one[keep], two[keep], kind[keep], weight[keep])
    return edges, covered


def read_openworm_xls(path: Path) -> tuple[pd.DataFrame, set[str]]:
    """OpenWorm ``CElegansNeuronTables.xls`` sheet ``Connectome``: Origin, Target, Type (Send/GapJunction), Number of Connections."""
    df = _read_excel(path, sheet_name="Connectome")
    _check_columns(path, df.columns, ["Origin", "Target", "Type", "Number of Connections"])
    df = df.rename(columns=lambda c: str(c).strip())
    kinds = df["Type"].astype(str).str.strip()
    known = kinds.isin(["Send", "GapJunction"])
    if not known.all():
        i = int(np.flatnonzero(~known.to_numpy())[0])
        raise DataFormatError(f"{path}: line {i + 2}, column 'Type': found {kinds.iloc[i]!r}, expected 'Send' or 'GapJunction'")
    kind = np.where(kinds == "GapJunction", "electrical", "chemical")
    return _edges(path, _names(path, df, "Origin", 2), _names(path, df, "Target", 2), kind,
                  _numeric(path, df, "Number of Connections", 2))


def read_cook_xlsx(path: Path) -> tuple[pd.DataFrame, set[str]]:
    """Cook et al. 2019 SI 5 adjacency matrices (corrected July 2020).

    Sheets ``hermaphrodite chemical`` (rows pre, columns post) and
    ``hermaphrodite gap jn symmetric``; column labels in row 3 and row labels
    in column C (1-based), values from D4; blank cells are 0; a last row
    repeats the column labels.
    """
    frames, covered = [], set()
    for sheet, kind in [("hermaphrodite chemical", "chemical"), ("hermaphrodite gap jn symmetric", "electrical")]:
        raw = _read_excel(path, sheet_name=sheet, header=None)
        if raw.shape[0] < 4 or raw.shape[1] < 4:
            raise DataFormatError(f"{path}: sheet {sheet!r} has {raw.shape[0]} rows and {raw.shape[1]} columns, expected "
                                  "column labels from D3, row labels from C4 and values from D4 (hundreds of cells)")
        cols = raw.iloc[2, 3:]
        rows = raw.iloc[3:, 2]
        # a blank label (empty or spaces) marks a row or column that is not part of the matrix
        keep_c = ~cols.map(_blank).to_numpy(dtype=bool)
        keep_r = ~rows.map(_blank).to_numpy(dtype=bool)
        if keep_c.sum() < 100 or keep_r.sum() < 100:
            raise DataFormatError(f"{path}: sheet {sheet!r} has {keep_r.sum()} row and {keep_c.sum()} column labels at C4/D3, expected hundreds of cell names")
        values = raw.iloc[3:, 3:].to_numpy()[np.ix_(keep_r, keep_c)]
        numeric = pd.DataFrame(values).apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        bad = ~np.isnan(numeric) & ((numeric < 0) | ~np.isfinite(numeric)) | (np.isnan(numeric) & pd.notna(values))
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise DataFormatError(f"{path}: sheet {sheet!r}, cell row {np.flatnonzero(keep_r)[r] + 4}, column {cols[keep_c].iloc[c]!r}: found {values[r, c]!r}, expected a number >= 0 or blank")
        numeric = np.nan_to_num(numeric)
        r_names = [canonical_name(n) for n in rows[keep_r]]
        c_names = [canonical_name(n) for n in cols[keep_c]]
        covered |= set(r_names) | set(c_names)
        ri, ci = np.nonzero(numeric)
        frames.append(pd.DataFrame({"pre": np.asarray(r_names)[ri], "post": np.asarray(c_names)[ci], "type": kind, "weight": numeric[ri, ci]}))
    return pd.concat(frames, ignore_index=True), covered


def _read_excel(path: Path, sheet_name: str | int = 0, **kwargs) -> pd.DataFrame:
    """One sheet of a spreadsheet (.xls or .xlsx: pandas tells them apart by their bytes)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # xlrd deprecation notices from pandas
        # xlrd, openpyxl and the zip and XML layers below them raise their own types for damaged files
        try:
            book = pd.ExcelFile(path)
        except Exception as e:  # noqa: BLE001
            # pandas' own text advises passing an engine, which is no remedy for a damaged file
            why = ("its bytes are neither an .xls nor an .xlsx workbook" if "format cannot be determined" in str(e)
                   else f"{type(e).__name__}: {e}")
            raise DataFormatError(f"{path}: not a readable spreadsheet ({why}); expected the published .xls/.xlsx "
                                  "file: download or copy it again") from None
        with book:
            if isinstance(sheet_name, str) and sheet_name not in book.sheet_names:
                raise DataFormatError(f"{path}: no sheet {sheet_name!r}; found sheets {book.sheet_names}, expected "
                                      "the sheets of the published file")
            try:
                return book.parse(sheet_name, **kwargs)
            except Exception as e:  # noqa: BLE001
                raise DataFormatError(f"{path}: sheet {sheet_name!r} is not a readable spreadsheet sheet "
                                      f"({type(e).__name__}: {e})") from None


WITVLIET_STAGES = {1: "L1", 2: "L1", 3: "L1", 4: "L1", 5: "L2", 6: "L3", 7: "adult", 8: "adult"}
WITVLIET = "Witvliet et al. 2021, Nature 596:257 (doi:10.1038/s41586-021-03778-8)"
ANNOTATIONS: tuple[Annotation, ...] = (
    Annotation("white_1986_whole", "cect/data/aconnectome_white_1986_whole.csv", read_tsv_edges, "adult",
               "White et al. 1986, Phil Trans R Soc B 314:1 (whole-animal compilation, WormWiring)"),
    Annotation("white_1986_n2u", "cect/data/white_1986_n2u.csv", read_tsv_edges, "adult",
               "White et al. 1986, animal N2U (as re-annotated by WormWiring)"),
    Annotation("white_1986_jsh", "cect/data/white_1986_jsh.csv", read_tsv_edges, "L4",
               "White et al. 1986, animal JSH (as re-annotated by WormWiring)"),
    Annotation("varshney_2011", "cect/data/NeuronConnect.xls", read_varshney_xls, "adult",
               "Varshney et al. 2011, PLoS Comput Biol 7:e1001066 (doi:10.1371/journal.pcbi.1001066)"),
    Annotation("cook_2019", "cect/data/SI 5 Connectome adjacency matrices, corrected July 2020.xlsx", read_cook_xlsx, "adult",
               "Cook et al. 2019, Nature 571:63 (doi:10.1038/s41586-019-1352-7), SI 5 corrected July 2020", COOK_UNIT),
    *(
        Annotation(f"witvliet_2020_{i}", f"cect/data/witvliet_2020_{i} {stage}.xlsx", read_witvliet_xlsx, stage, f"{WITVLIET}, dataset {i}")
        for i, stage in WITVLIET_STAGES.items()
    ),
    Annotation("openworm", "cect/data/CElegansNeuronTables.xls", read_openworm_xls, "adult",
               "OpenWorm CElegansNeuronTables.xls (c302), after Varshney et al. 2011"),
)


def dense_matrices(edges: pd.DataFrame, covered: set[str], names: list[str]) -> tuple[np.ndarray, np.ndarray, dict]:
    """Edge list -> (chemical, gap) float32 (n, n) matrices on ``names``, NaN off coverage.

    Returns also counts of what was dropped (non-neuronal partners).
    """
    n = len(names)
    index = {name: i for i, name in enumerate(names)}
    is_neuron = edges["pre"].isin(index) & edges["post"].isin(index)
    dropped = edges[~is_neuron]
    e = edges[is_neuron]
    # int64 also when no edge is left: an empty float index array would make np.add.at raise
    pre = e["pre"].map(index).to_numpy(dtype=np.int64)
    post = e["post"].map(index).to_numpy(dtype=np.int64)
    w = e["weight"].to_numpy(dtype=np.float64)
    chem = e["type"].to_numpy() == "chemical"

    chemical = np.zeros((n, n))
    np.add.at(chemical, (pre[chem], post[chem]), w[chem])
    directed_gap = np.zeros((n, n))
    np.add.at(directed_gap, (pre[~chem], post[~chem]), w[~chem])
    listed = (directed_gap > 0).astype(np.float64)
    count = listed + listed.T
    total = directed_gap + directed_gap.T
    gap = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    # self-pairs are listed once but would be counted twice by the transpose
    np.fill_diagonal(gap, np.diag(directed_gap))

    cov = np.array([name in covered for name in names])
    mask = ~(cov[:, None] & cov[None, :])
    chemical[mask] = np.nan
    gap[mask] = np.nan
    stats = {
        "covered_neurons": int(cov.sum()),
        "dropped_non_neuronal_chemical": float(dropped.loc[dropped["type"] == "chemical", "weight"].sum()),
        "dropped_non_neuronal_gap": float(dropped.loc[dropped["type"] != "chemical", "weight"].sum()),
        "asymmetric_gap_pairs": int(((directed_gap > 0) & (directed_gap.T > 0) & (directed_gap != directed_gap.T)).sum() // 2),
    }
    return chemical.astype(np.float32), gap.astype(np.float32), stats


def connectome_dataset(annotations: list[tuple[str, pd.DataFrame, set[str], dict]]) -> xr.Dataset:
    """Stack annotations ``(name, edges, covered, coords)`` on the canonical neurons."""
    table = neurons()
    names = table.index.tolist()
    chem, gap, per_coords = [], [], {}
    for name, edges, covered, coords in annotations:
        c, g, stats = dense_matrices(edges, covered, names)
        if stats["covered_neurons"] == 0:
            raise DataFormatError(f"annotation {name!r}: no canonical neuron names found; expected names such as 'ADAL', 'AVAL'")
        chem.append(c)
        gap.append(g)
        for k, v in {**coords, **stats}.items():
            per_coords.setdefault(k, []).append(v)
    ann = [a[0] for a in annotations]
    ds = xr.Dataset(
        {
            "chemical": (("annotation", "pre", "post"), np.stack(chem), {
                "long_name": "chemical synapse weight from pre to post",
                "units": "1",
                "description": "as the annotation gives it, see coordinate weight_unit; NaN: a neuron the annotation does not cover",
            }),
            "gap_junction": (("annotation", "pre", "post"), np.stack(gap), {
                "long_name": "gap junction weight between pre and post (symmetric)",
                "units": "1",
                "description": "mean of the nonzero values listed for either direction; see weight_unit; NaN: not covered",
            }),
            "position": (("neuron", "space"), table[["x", "y", "z"]].to_numpy(dtype=np.float32), {
                "long_name": "neuron position in the NeuroPAL/Randi atlas", "units": "arbitrary atlas units",
            }),
        },
        coords={
            "annotation": ann,
            "pre": names,
            "post": names,
            "neuron": names,
            "space": ["x", "y", "z"],
            "neuron_class": ("neuron", table["class"].to_numpy(dtype=str)),
            "neuron_type": ("neuron", table["type"].to_numpy(dtype=str)),
            **{k: ("annotation", np.asarray(v)) for k, v in per_coords.items()},
        },
    )
    ds["covered_neurons"].attrs.update(long_name="neurons the annotation covers", units="1")
    return ds.chunk({"annotation": 1})  # one annotation per chunk: the unit models read


class CelegansConnectome(DatasetLoader):
    card = cards.CONNECTOME

    def fetch(self, source, only=None):
        if source is not None and _is_consensus(Path(source)):
            files = _consensus_files(Path(source))
            return files, f"consensus connectome CSV {source}"
        paths, origin = CECT.materialize(source)
        return {Path(m).name: p for m, p in paths.items()}, origin

    def build(self, files):
        if all(k.startswith("consensus_connectome") for k in files):
            from .consensus import read_consensus_csv

            parts = []
            for key, path in sorted(files.items()):
                edges, covered = read_consensus_csv(path)
                _check_names(path, covered)
                parts.append((Path(key).stem, edges, covered, {"stage": "adult", "reference": "Simeon et al. 2024, consensus connectome (HuggingFace qsimeon/celegans_connectome_data)", "weight_unit": "mean weight over annotations", "source_file": key}))
            return connectome_dataset(parts)
        parts = []
        for a in ANNOTATIONS:
            key = Path(a.member).name
            edges, covered = a.reader(files[key])
            parts.append((a.name, edges, covered, {"stage": a.stage, "reference": a.reference, "weight_unit": a.weight_unit, "source_file": key}))
        return connectome_dataset(parts)

    def summary(self, ds):
        lines = [f"{'annotation':<18} {'stage':<6} {'neurons':>7} {'chem>0':>7} {'gap>0':>6}"]
        chem = (ds.chemical > 0).sum(("pre", "post")).values
        gap = (ds.gap_junction > 0).sum(("pre", "post")).values
        for i, a in enumerate(ds.annotation.values):
            lines.append(f"{a:<18} {str(ds.stage.values[i]):<6} {int(ds.covered_neurons.values[i]):>7} {int(chem[i]):>7} {int(gap[i]):>6}")
        return lines


def _is_consensus(path: Path) -> bool:
    return (path.is_file() and path.name.startswith("consensus_connectome")) or (
        path.is_dir() and any(path.glob("consensus_connectome*.csv"))
    )


def _consensus_files(path: Path) -> dict[str, Path]:
    found = [path] if path.is_file() else sorted(path.glob("consensus_connectome*.csv"))
    return {p.name: p for p in found}


def _check_names(path: Path, covered: set[str]) -> None:
    """Consensus files hold neurons only; a name outside the canonical list is an error."""
    valid = set(neurons().index)
    unknown = sorted(n for n in covered if n not in valid)
    if unknown:
        raise DataFormatError(f"{path}: neuron name(s) {unknown[:5]} are not among the 302 canonical C. elegans neurons")
