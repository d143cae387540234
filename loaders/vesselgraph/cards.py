"""Card of the VesselGraph dataset (standard library only: read by listings)."""
from __future__ import annotations

from ..card import DatasetCard

VESSELGRAPH = DatasetCard(
    name="vesselgraph",
    version="1.0",
    title="VesselGraph: whole-brain mouse vessel graphs (VesSAP brains, ROIs, synthetic graphs)",
    description=(
        "Spatial graphs of the mouse brain vasculature: nodes are vessel bifurcations and end points with "
        "3D positions, edges are vessel segments with 17 numeric features (length, distance, curveness, volume, radii, "
        "roundness, end-node degrees, ...). Nine VesSAP whole brains (BALBc, C57BL/6, CD1-E; millions of nodes each, "
        "with Allen atlas regions), three Kleinfeld-lab graphs, ROI subgraphs and five synthetic graphs. One group per "
        "graph; BALBc_no1 is the ogbl-vessel graph (3,538,495 nodes, 5,345,897 edges)."
    ),
    license="CC BY-NC 4.0 (data); code MIT",
    citation=("Paetzold JC, McGinnis J, Shit S, Ezhov I, Büschl P, Prabhakar C, Todorov MI, Sekuboyina A, Kaissis G, "
              "Ertürk A, Günnemann S, Menze BH (2021) Whole Brain Vessel Graphs: A Dataset and Benchmark for Graph "
              "Learning and Neuroscience. NeurIPS 2021 Datasets and Benchmarks track, arXiv:2108.13233"),
    homepage="https://github.com/jocpae/VesselGraph",
    parts="graph",
    loader="neuroharness.loaders.vesselgraph.loader:VesselGraphLoader",
    redistribution=("allowed: CC BY-NC 4.0 permits redistribution for non-commercial use with attribution "
                    "(cite Paetzold et al. 2021)"),
    offline=("pass --source with a local copy (a folder or zip of <graph>_nodes_processed.csv / _edges_processed.csv files), or set $NEUROHARNESS_VESSELGRAPH_MIRROR to a folder URL holding the graph zips; python scripts/make_vesselgraph_fixture.py DIR writes synthetic graphs in the release layout (then --source DIR)"),
)

CARDS = (VESSELGRAPH,)
