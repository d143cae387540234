"""Card of the FISBe dataset (standard library only: read by listings)."""
from __future__ import annotations

from ..card import DatasetCard

FISBE = DatasetCard(
    name="fisbe",
    # 1.1 (issue 16): the same values in a new layout, so the content checksum differs from 1.0's; see the
    # description's last sentence
    version="1.1",
    title="FISBe: FlyLight Instance Segmentation Benchmark (3D multi-neuron light microscopy)",
    description=(
        "101 fruit-fly brain volumes (MCFO, 3 colour channels, 0.44 um isotropic, about 400 x 700 x 700 "
        "voxels) with per-neuron instance masks that may overlap: 30 completely labeled (139 neurons) and 71 partly "
        "labeled (451 neurons), split train/val/test 18/5/7 and 43/12/16. One OME-NGFF 0.4 image group per sample, "
        "which napari and neuroglancer open: the raw channels with a pyramid of block means, and the neurons as NGFF "
        "label images (one per group of neurons that share no voxel; label value = neuron id). Version 1.1 changed "
        "only the store layout from 1.0 (a single-level image plus a boolean gt_instances array outside labels/, "
        "which viewers did not show): same raw values and neuron masks, new content checksum."
    ),
    license="CC BY 4.0",
    citation=("Mais L, Hirsch P, Managan C, Kandarpa R, Rumberger JL, Reinke A, Maier-Hein L, Ihrke G, Kainmueller D "
              "(2024) FISBe: A real-world benchmark dataset for instance segmentation of long-range thin filamentous "
              "structures. CVPR 2024, arXiv:2404.00130; data: Zenodo doi:10.5281/zenodo.10875063"),
    homepage="https://kainmueller-lab.github.io/fisbe",
    loader="neuroharness.loaders.fisbe.loader:FisbeLoader",
    redistribution="allowed: CC BY 4.0 permits redistribution with attribution (cite Mais et al. 2024)",
    offline=("pass --source with a local copy of the release (folder or zip), or set $NEUROHARNESS_FISBE_URL to a mirror of the Zenodo record; python scripts/make_fisbe_fixture.py DIR writes synthetic volumes in the release layout (then --source DIR)"),
)

CARDS = (FISBE,)
