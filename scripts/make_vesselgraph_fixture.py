"""Synthetic VesselGraph-like graphs in the exact ``*_processed.csv`` layout (fixtures for tests and benchmarks).

Files (``;``-separated, header on line 1, no index column), as written by VesselGraph's
``process_edge_list.py`` / ``one_hot_encode_atlas.py``:

* ``<graph_id>_nodes_processed.csv``: ``id;pos_x;pos_y;pos_z;degree;isAtSampleBorder``
* ``<graph_id>_edges_processed.csv``: :data:`EDGE_COLUMNS` (20 columns)
* ``<graph_id>_atlas_processed.csv`` (optional): one row per node, one-hot ``Region_Acronym_<acr>``
  columns only (the real writer is ``pandas.get_dummies(...).to_csv(index=False)``: no id column;
  columns in sorted acronym order, as ``get_dummies`` gives them).

Release layout written by :func:`write_release`::

    <root>/<name>/<graph_id>/<graph_id>_{nodes,edges[,atlas]}_processed.csv
    <root>/<name>.zip          with zip=True (members <name>/<graph_id>/...; the loose tree is removed)

Model (all vectorized: numpy, scipy ``cKDTree`` and ``csgraph``; no Python loop over nodes or edges):

* Nodes: uniform points in a box with sides in ratio 1.25 : 1 : 0.75 at a constant density of one node
  per :data:`NODE_VOLUME` cubic units (units ~ 3 um voxels: BALBc_no1's 3,538,495 nodes fill about
  3320 x 2650 x 1990 units; 2,000 nodes about 275 x 220 x 165), rounded to 2 decimals. Node ids follow a
  volume scan (z slabs, then y rows of :data:`SCAN_CELL` units, then x), as an extraction walking the
  volume would number them. ``isAtSampleBorder`` = within :data:`BORDER` units of a box face (0.1 % of
  the nodes at whole-brain size, 1-2 % at 2,000 nodes).
* Edges (capillary bed): every node gets a degree budget (1: 5 %, 2: 2 %, 3: 72 %, 4: 18 %, 5: 3 %;
  border nodes 1, since vessels are cut there; :data:`ISOLATED_SHARE` of the nodes 0), then rounds of a
  randomized proposal matching on the :data:`K_NEIGHBOURS` nearest neighbours fill the budgets (each
  round a random half of the open nodes proposes to one random open candidate of the other half; each
  receiver accepts up to its free budget). Result at whole-brain size: E/N = 1.510 (BALBc_no1:
  5,345,897 / 3,538,495 = 1.511), degree 3: 71 %, 4: 16 %, 1: 5.7 %, 2: 5.6 %, 5: 1.9 %, 0: 0.09 %.
  Isolated nodes (the 0.05 % given no budget, plus nodes whose candidates all filled up) stay in the
  nodes file, as in the real release; loaders drop them.
* Radii (Murray-like trees): a shortest-path forest (weight = distance) grown from roots near the top
  face (z max) of the largest component, one root per :data:`NODES_PER_ROOT` nodes, gives each tree edge
  (parent, child) ``r = r_cap * size(child subtree) ** (1/3)`` (Murray: r^3 ~ capillaries served),
  clipped to :data:`MAX_RADIUS`, and the edges at a root at least :data:`ROOT_RADIUS`; other edges keep
  ``r_cap ~ U(2.0, 3.4)``. With ``minRadiusAvg = r * U(0.72, 0.9)`` the three classes of the vessel task
  (minRadiusAvg <= 5, (5, 13.33], > 13.33) hold about 86 %, 12 % and 1-2 % of the edges; the large
  class is present whenever there is an edge (root trunks), the middle one held >= 300 edges in every
  2,000-node graph tried (seeds 0-39).
* Features: ``distance`` = Euclidean end-node distance (about 19 +- 5.5 units, so the spatial sampler's
  cube of half-width mean + 2 std around a node holds ~ 40 nodes); ``curveness = 1 + Gamma(1.5, 0.1) * 2.7 / r``
  (thick vessels straighter, so the radius class is weakly visible in the inputs),
  ``length = distance * curveness``; ``avgRadiusAvg = r``, ``maxRadiusAvg = r * U(1.1, 1.35)``; stds
  5-20 % of their means (roundness 2-12 %); ``roundnessAvg = minRadiusAvg / maxRadiusAvg``;
  ``volume = pi r^2 length``, ``avgCrossSection = volume / length``;
  ``num_voxels = max(1, round(length / 1.2))``. Every float is rounded to 6 significant digits
  (Voreen's stream precision) and derived columns are computed from the rounded inputs, so, read back
  from the CSV, ``curveness = length / distance``, ``avgCrossSection = volume / length``,
  ``roundnessAvg = min / max radius`` and ``distance = |pos1 - pos2|`` hold to 5e-6 relative, while
  ``curveness >= 1`` and ``minRadiusAvg <= avgRadiusAvg <= maxRadiusAvg`` hold exactly.

Cost (2 cores, shared): 3,538,495 nodes / 5.34 M edges with atlas: generation ~ 25-30 s, writing the
three CSVs (~ 890 MB) ~ 10 s, peak RSS ~ 2.5 GB (tests/benchmarks/test_bench_vesselgraph_fixture.py).

Usage::

    python scripts/make_vesselgraph_fixture.py OUT [--nodes N] [--seed S] [--atlas] [--zip]
                                                   [--name NAME] [--graph-id ID]

writes one graph in the release layout ``OUT/<name>/<graph_id>/`` (default name ``synthetic_graph_1``,
graph id ``1_b_3_0``) or ``OUT/<name>.zip``.

API: :func:`synthetic_graph`, :func:`write_graph`, :func:`write_release`, :func:`default_graph_id`.
"""
from __future__ import annotations

import argparse
import itertools
import os
import re
import shutil
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.spatial import cKDTree

NODE_COLUMNS = ["id", "pos_x", "pos_y", "pos_z", "degree", "isAtSampleBorder"]
EDGE_COLUMNS = ["id", "node1id", "node2id", "length", "distance", "curveness", "volume", "avgCrossSection",
                "minRadiusAvg", "minRadiusStd", "avgRadiusAvg", "avgRadiusStd", "maxRadiusAvg", "maxRadiusStd",
                "roundnessAvg", "roundnessStd", "node1_degree", "node2_degree", "num_voxels", "hasNodeAtSampleBorder"]
ATLAS_PREFIX = "Region_Acronym_"
# Allen CCFv3 group acronyms, one per octant (x, y, z halves; index 4*x + 2*y + z), plus a midline slab.
OCTANT_REGIONS = ("OLF", "STR", "Isocortex", "HPF", "CB", "MB", "TH", "HY")
MIDLINE_REGION = "fiber tracts"  # a real group name with a space (Voreen/Allen "fiber tracts")
MIDLINE_HALF_WIDTH = 0.02  # fraction of the box's x side

ASPECT = np.array([1.25, 1.0, 0.75])  # box side ratios (x, y, z), roughly a mouse brain's
NODE_VOLUME = 5000.0  # cubic units per node: node density, constant across sizes
BORDER = 0.5  # units from a box face within which a node is at the sample border
POS_DECIMALS = 2
SCAN_CELL = 40.0  # units: slab / row thickness of the node id order
K_NEIGHBOURS = 12  # candidate partners per node for the matching
DEGREE_BUDGET = (np.array([1, 2, 3, 4, 5]), np.array([0.05, 0.02, 0.72, 0.18, 0.03]))
MAX_ROUNDS = 200
MAX_IDLE_ROUNDS = 8  # stop after this many rounds without a new edge
NODES_PER_ROOT = 20000
ROOT_LAYER = 0.1  # roots are drawn among nodes in the top 10 % of z
CAP_RADIUS = (2.0, 3.4)  # capillary avgRadiusAvg range
MAX_RADIUS = 45.0
ROOT_RADIUS = 20.0  # the edges at a tree root are at least this thick (minRadiusAvg >= 14.4 > 13.33)
ISOLATED_SHARE = 0.0005  # nodes given no vessel at all (real files keep a few isolated nodes)
SIG_DIGITS = 6
VOXEL_STEP = 1.2  # mean centreline step per voxel (units), for num_voxels


# -- helpers -------------------------------------------------------------------
def _round_sig(x: np.ndarray, digits: int = SIG_DIGITS) -> np.ndarray:
    """``x`` (>= 0) rounded to ``digits`` significant digits.

    The result is the float64 nearest that decimal (so its repr is short) for x >= 1e-16.
    """
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(divide="ignore"):
        e = np.floor(np.log10(x))
    shift = np.clip(digits - 1 - np.nan_to_num(e, neginf=0.0), -300, 300).astype(np.int64)
    scale = _POW10[np.abs(shift)]
    # k / 10**m and k * 10**m are one correctly rounded operation each: the result is the decimal's nearest float
    return np.where(shift >= 0, np.rint(x * scale) / scale, np.rint(x / scale) * scale)


_POW10 = 10.0 ** np.arange(301)


def box_sides(n_nodes: int) -> np.ndarray:
    """Box side lengths (3,) float64 (x, y, z) for ``n_nodes`` at the fixed density."""
    side = (n_nodes * NODE_VOLUME / np.prod(ASPECT)) ** (1 / 3)
    return ASPECT * side


def _workers() -> int:
    """CPU cores this process may use (cKDTree threads)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _scan_order(pos: np.ndarray, sides: np.ndarray) -> np.ndarray:
    """Permutation (N,) putting nodes in volume-scan order: z slabs, then y rows, of SCAN_CELL units, then x.

    Node ids follow space, as in an extraction that walks the volume; it also makes every neighbour
    gather cache-friendly (a kNN query in random order is ~3x slower at whole-brain size).
    """
    cz = np.floor(pos[:, 2] / SCAN_CELL).astype(np.int64)
    cy = np.floor(pos[:, 1] / SCAN_CELL).astype(np.int64)
    ny = int(np.ceil(sides[1] / SCAN_CELL)) + 1
    nx = int(np.ceil(sides[0])) + 1
    return np.argsort((cz * ny + cy) * nx + np.floor(pos[:, 0]).astype(np.int64), kind="stable")


def _match(pos: np.ndarray, budget: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Undirected edges ``(a, b)`` int64 (E,), a < b, sorted by (a, b), degree <= budget, between near neighbours.

    Rounds of a randomized proposal matching on the K nearest neighbours. Only the open nodes (free budget
    and a usable candidate left) are kept in the compact arrays, so late rounds cost little.
    """
    n = len(pos)
    k = min(K_NEIGHBOURS, n - 1)
    dist, nb = cKDTree(pos, balanced_tree=False).query(pos, k=k + 1, workers=_workers())  # faster build here
    itype = np.int32 if n < 2**31 else np.int64
    nb = nb[:, 1:].astype(itype)
    # column 0 is the point itself unless a duplicate position came first: drop any self or zero-length pair
    avail = (dist[:, 1:] > 0) & (nb != np.arange(n, dtype=itype)[:, None])
    del dist
    cap = budget.astype(np.int32)  # free degree budget per node
    act = np.arange(n, dtype=itype)  # node of each row of nb / avail
    row_of = np.arange(n, dtype=np.int64)  # row of a node in nb / avail, -1 once it left
    chunks, idle = [], 0
    for _ in range(MAX_ROUNDS):
        avail &= cap[nb] > 0
        keep = (cap[act] > 0) & avail.any(1)
        if not keep.all():
            row_of[act[~keep]] = -1
            act, nb, avail = act[keep], nb[keep], avail[keep]
            row_of[act] = np.arange(len(act))
        if not len(act):
            break
        # a random half of the open nodes propose, to one random open candidate that is not proposing;
        # nodes that left the compact arrays may still receive while they have free budget
        proposing = rng.random(len(act)) < 0.5
        receiver = cap > 0
        receiver[act[proposing]] = False
        rows = np.flatnonzero(proposing)
        ok = avail[rows] & receiver[nb[rows]]
        key = rng.random(ok.shape, dtype=np.float32)
        key[~ok] = 2.0
        slot = key.argmin(1)
        has = ok[np.arange(len(rows)), slot]
        rows, slot = rows[has], slot[has]
        v = nb[rows, slot].astype(np.int64)
        # each receiver accepts up to its free budget, in random order
        order = np.lexsort((rng.random(len(v)), v))
        rows, slot, v = rows[order], slot[order], v[order]
        start = np.r_[True, v[1:] != v[:-1]]
        i = np.arange(len(v))
        acc = i - np.maximum.accumulate(np.where(start, i, 0)) < cap[v]
        rows, slot, v = rows[acc], slot[acc], v[acc]
        if not len(v):
            idle += 1
            if idle >= MAX_IDLE_ROUNDS:
                break
            continue
        idle = 0
        u = act[rows].astype(np.int64)
        cap[u] -= 1  # one proposal per proposer: u is unique
        np.subtract.at(cap, v, 1)
        chunks.append(np.minimum(u, v) * n + np.maximum(u, v))
        # the pair is used: neither end may propose it again
        avail[rows, slot] = False
        rv = row_of[v]
        listed = rv >= 0
        rv, uu = rv[listed], u[listed]
        hit = nb[rv] == uu[:, None]
        found = hit.any(1)
        avail[rv[found], hit[found].argmax(1)] = False
    del avail, nb, act, row_of
    code = np.sort(np.concatenate(chunks)) if chunks else np.zeros(0, np.int64)
    code = code[np.r_[True, code[1:] != code[:-1]]] if len(code) else code  # defensive: each pair once
    return code // n, code % n


def _subtree_sizes(pred: np.ndarray) -> np.ndarray:
    """Nodes (itself included) in each node's subtree of the forest ``pred`` (N,) int (< 0: root or unreached)."""
    n = len(pred)
    # depth by pointer jumping (log2(depth) vectorized passes; the gathers read the old values)
    anc = np.where(pred >= 0, pred, -1).astype(np.int64)
    depth = (anc >= 0).astype(np.int64)
    live = np.flatnonzero(anc >= 0)
    while len(live):
        a = anc[live]
        depth[live] += depth[a]
        anc[live] = anc[a]
        live = live[anc[live] >= 0]
    # sizes: deepest level first, each level adds its sizes into its parents
    size = np.ones(n, np.int64)
    order = np.argsort(-depth, kind="stable")
    d_sorted = depth[order]
    bounds = np.flatnonzero(np.r_[True, d_sorted[1:] != d_sorted[:-1], True])
    for lo, hi in itertools.pairwise(bounds):
        if d_sorted[lo] == 0:
            break
        level = order[lo:hi]
        np.add.at(size, pred[level], size[level])
    return size


def _radii(n: int, a: np.ndarray, b: np.ndarray, dist: np.ndarray, pos: np.ndarray,
           rng: np.random.Generator) -> np.ndarray:
    """avgRadiusAvg (E,) float64: capillaries, plus Murray-like trees grown from roots near the top face."""
    e = len(a)
    r = rng.uniform(*CAP_RADIUS, size=e)
    if e == 0:
        return r
    graph = coo_matrix((dist, (a, b)), shape=(n, n)).tocsr()
    # roots in the largest component, so that the trees are large (a root in a 2-node piece grows nothing)
    _, comp = connected_components(graph, directed=False)
    giant = comp == np.bincount(comp).argmax()
    top = np.flatnonzero(giant & (pos[:, 2] >= np.quantile(pos[giant, 2], 1 - ROOT_LAYER)))
    n_roots = min(len(top), max(1, round(n / NODES_PER_ROOT)))
    roots = np.sort(rng.choice(top, size=n_roots, replace=False))
    _, pred, _ = dijkstra(graph, directed=False, indices=roots, return_predecessors=True, min_only=True)
    size = _subtree_sizes(pred)
    child = np.flatnonzero(pred >= 0)
    parent = pred[child].astype(np.int64)
    # the tree edge (parent, child) is edge row k of the sorted (a, b) list
    code = a * n + b
    k = np.searchsorted(code, np.minimum(parent, child) * n + np.maximum(parent, child))
    r[k] *= np.cbrt(size[child].astype(np.float64))
    r = np.minimum(r, MAX_RADIUS)
    at_root = np.isin(a, roots) | np.isin(b, roots)  # the trunks entering from the surface
    r[at_root] = np.maximum(r[at_root], ROOT_RADIUS)
    return r


def _atlas(pos: np.ndarray, sides: np.ndarray) -> pd.DataFrame:
    """One-hot ``Region_Acronym_<acr>`` (N, R) int64 frame: octant regions plus a midline slab."""
    half = sides / 2
    octant = 4 * (pos[:, 0] >= half[0]) + 2 * (pos[:, 1] >= half[1]) + (pos[:, 2] >= half[2])
    names = np.array(OCTANT_REGIONS + (MIDLINE_REGION,))
    label = np.where(np.abs(pos[:, 0] - half[0]) < MIDLINE_HALF_WIDTH * sides[0], len(OCTANT_REGIONS), octant)
    present = np.unique(label)  # get_dummies: only regions that occur, in sorted acronym order
    acr = sorted(names[present].tolist())
    return pd.DataFrame({ATLAS_PREFIX + x: (label == list(names).index(x)).astype(np.int64) for x in acr})


def synthetic_graph(n_nodes: int = 2000, seed: int = 0, *, atlas: bool = False
                    ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None]:
    """A synthetic vessel graph as ``(nodes, edges, atlas)`` frames with exactly the CSV columns.

    nodes (N rows): ``id`` int64 (= row index), ``pos_x/y/z`` float64 (units ~ voxels), ``degree`` int64
    (from the edge list), ``isAtSampleBorder`` int64 0/1.
    edges (E ~ 1.51 N rows, sorted by node1id then node2id): ``id`` int64 (= row index), ``node1id < node2id``
    int64, 13 float64 measurements, ``node1_degree``/``node2_degree``/``num_voxels``/``hasNodeAtSampleBorder``
    int64. atlas (N rows, only with ``atlas=True``): ``Region_Acronym_<acr>`` int64 0/1, one 1 per row.
    Deterministic in ``seed``; see the module docstring for the model.
    """
    n = int(n_nodes)
    if n < 2:
        raise ValueError(f"n_nodes must be >= 2, got {n_nodes}")
    rng = np.random.default_rng(seed)
    sides = box_sides(n)
    pos = np.round(rng.random((n, 3)) * sides, POS_DECIMALS)
    pos = pos[_scan_order(pos, sides)]
    border = ((pos <= BORDER) | (pos >= sides - BORDER)).any(1)
    budget = rng.choice(DEGREE_BUDGET[0], size=n, p=DEGREE_BUDGET[1])
    budget[border] = 1
    budget[rng.choice(n, size=round(n * ISOLATED_SHARE), replace=False)] = 0
    a, b = _match(pos, budget, rng)
    e = len(a)
    deg = np.bincount(a, minlength=n) + np.bincount(b, minlength=n)

    dist = _round_sig(np.sqrt(((pos[a] - pos[b]) ** 2).sum(1)))
    curve_excess = rng.gamma(1.5, 0.1, size=e)
    r = _radii(n, a, b, dist, pos, rng)
    # thick vessels run straighter than capillaries (excess tortuosity ~ 1/r), which gives the vessel
    # classification task a (weak, noisy) signal in its inputs, as real geometry is expected to
    curve = 1.0 + curve_excess * (np.mean(CAP_RADIUS) / r)
    length = np.maximum(_round_sig(dist * curve), dist)  # >= distance exactly, so curveness >= 1
    min_r = _round_sig(r * rng.uniform(0.72, 0.9, size=e))
    avg_r = _round_sig(r)
    max_r = _round_sig(r * rng.uniform(1.1, 1.35, size=e))
    volume = _round_sig(np.pi * avg_r**2 * length)
    roundness = _round_sig(min_r / max_r)
    d1, d2 = deg[a], deg[b]
    edges = pd.DataFrame({
        "id": np.arange(e, dtype=np.int64),
        "node1id": a,
        "node2id": b,
        "length": length,
        "distance": dist,
        "curveness": _round_sig(length / dist),
        "volume": volume,
        "avgCrossSection": _round_sig(volume / length),
        "minRadiusAvg": min_r,
        "minRadiusStd": _round_sig(min_r * rng.uniform(0.05, 0.2, size=e)),
        "avgRadiusAvg": avg_r,
        "avgRadiusStd": _round_sig(avg_r * rng.uniform(0.05, 0.2, size=e)),
        "maxRadiusAvg": max_r,
        "maxRadiusStd": _round_sig(max_r * rng.uniform(0.05, 0.2, size=e)),
        "roundnessAvg": roundness,
        "roundnessStd": _round_sig(roundness * rng.uniform(0.02, 0.12, size=e)),
        "node1_degree": np.minimum(d1, d2),
        "node2_degree": np.maximum(d1, d2),
        "num_voxels": np.maximum(1, np.rint(length / VOXEL_STEP)).astype(np.int64),
        "hasNodeAtSampleBorder": (border[a] | border[b]).astype(np.int64),
    }, columns=EDGE_COLUMNS)
    nodes = pd.DataFrame({
        "id": np.arange(n, dtype=np.int64),
        "pos_x": pos[:, 0], "pos_y": pos[:, 1], "pos_z": pos[:, 2],
        "degree": deg.astype(np.int64),
        "isAtSampleBorder": border.astype(np.int64),
    }, columns=NODE_COLUMNS)
    return nodes, edges, (_atlas(pos, sides) if atlas else None)


# -- writing -------------------------------------------------------------------
def _write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """``frame`` as ``;``-separated CSV with an unquoted header and no index (atomic: temp file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    # Arrow quotes header names; the real files (pandas to_csv) do not: the header is written by hand
    table = pa.table({c: frame[c].to_numpy() for c in frame.columns})
    try:
        with open(tmp, "wb") as fh:
            fh.write((";".join(frame.columns) + "\n").encode())
            pacsv.write_csv(table, fh, pacsv.WriteOptions(include_header=False, delimiter=";",
                                                          quoting_style="none", batch_size=1 << 16))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_graph(root, graph_id: str, nodes: pd.DataFrame, edges: pd.DataFrame,
                atlas: pd.DataFrame | None = None) -> dict[str, Path]:
    """Write ``<root>/<graph_id>_{nodes,edges[,atlas]}_processed.csv``; returns ``{kind: path}``."""
    root = Path(root)
    out = {"nodes": _write_csv(nodes, root / f"{graph_id}_nodes_processed.csv"),
           "edges": _write_csv(edges, root / f"{graph_id}_edges_processed.csv")}
    if atlas is not None:
        out["atlas"] = _write_csv(atlas, root / f"{graph_id}_atlas_processed.csv")
    return out


def default_graph_id(name: str) -> str:
    """The CSV prefix of a release graph: ``synthetic_graph_<k>`` -> ``<k>_b_3_0`` (release pattern), else the name."""
    m = re.fullmatch(r"synthetic_graph_(\d+)", name)
    return f"{m.group(1)}_b_3_0" if m else name


def write_release(root, graphs: dict[str, int] | None = None, seed: int = 0, zip: bool = False, *,
                  atlas: bool = False, graph_ids: dict[str, str] | None = None) -> dict:
    """Write several graphs in the release layout ``<root>/<name>/<graph_id>/<graph_id>_*_processed.csv``.

    ``graphs``: ``{name: n_nodes}`` (default ``{"synthetic_graph_1": 2000}``); the i-th graph uses seed
    ``seed + i``. ``graph_ids`` overrides :func:`default_graph_id`. With ``zip=True`` each graph goes into
    ``<root>/<name>.zip`` (members ``<name>/<graph_id>/...``, deflated) and no loose files are left.
    Returns ``{name: {"graph_id", "n_nodes", "n_edges", "seed", "files": {kind: path} | None,
    "zip": path | None}}``.
    """
    root = Path(root)
    graphs = {"synthetic_graph_1": 2000} if graphs is None else graphs
    info = {}
    for i, (name, n) in enumerate(graphs.items()):
        gid = (graph_ids or {}).get(name) or default_graph_id(name)
        nodes, edges, at = synthetic_graph(n, seed + i, atlas=atlas)
        folder = root / name / gid
        files = write_graph(folder, gid, nodes, edges, at)
        entry = {"graph_id": gid, "n_nodes": len(nodes), "n_edges": len(edges), "seed": seed + i,
                 "files": files, "zip": None}
        if zip:
            zpath = root / f"{name}.zip"
            tmp = zpath.with_name(f".{zpath.name}.tmp{os.getpid()}")
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
                for kind in ("nodes", "edges", "atlas"):
                    if kind in files:
                        zf.write(files[kind], f"{name}/{gid}/{files[kind].name}")
            os.replace(tmp, zpath)
            shutil.rmtree(root / name)
            entry.update(files=None, zip=zpath)
        info[name] = entry
    return info


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, help="folder to write the release layout into")
    p.add_argument("--nodes", type=int, default=2000, help="number of nodes (BALBc_no1: 3538495)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--atlas", action="store_true", help="also write the one-hot atlas file")
    p.add_argument("--zip", action="store_true", help="write OUT/<name>.zip instead of the loose files")
    p.add_argument("--name", default="synthetic_graph_1", help="release (graph) name, the top folder")
    p.add_argument("--graph-id", default=None, help="CSV prefix (default: from the name, e.g. 1_b_3_0)")
    a = p.parse_args(argv)
    t = time.perf_counter()
    info = write_release(a.out, {a.name: a.nodes}, seed=a.seed, zip=a.zip, atlas=a.atlas,
                         graph_ids={a.name: a.graph_id} if a.graph_id else None)
    g = info[a.name]
    where = g["zip"] if a.zip else g["files"]["nodes"].parent
    print(f"{a.name} ({g['graph_id']}): {g['n_nodes']} nodes, {g['n_edges']} edges -> {where} "
          f"[{time.perf_counter() - t:.1f} s]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
