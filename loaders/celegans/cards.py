"""Cards of the C. elegans datasets (standard library only: read by listings)."""
from __future__ import annotations

from ..card import DatasetCard

CONNECTOME = DatasetCard(
    name="celegans-connectome",
    version="1.0",
    title="C. elegans connectome annotations on one canonical neuron list",
    description=(
        "Chemical and gap-junction connectivity of the 302 hermaphrodite neurons from "
        "14 EM annotations (White 1986 whole/N2U/JSH, Varshney 2011, Cook 2019 hermaphrodite, "
        "Witvliet 2021 datasets 1-8 from L1 to adult, OpenWorm), as shipped in the cect 0.3.5 wheel. "
        "Dims annotation x pre x post; NaN where an annotation does not cover a neuron."
    ),
    license="source annotations: see each publication; cect is MIT-licensed (OpenWorm)",
    # the references of connectome.ANNOTATIONS, in order, without repeats (a test checks they agree)
    citation=(
        "White et al. 1986, Phil Trans R Soc B 314:1 (whole-animal compilation, WormWiring); "
        "White et al. 1986, animal N2U (as re-annotated by WormWiring); "
        "White et al. 1986, animal JSH (as re-annotated by WormWiring); "
        "Varshney et al. 2011, PLoS Comput Biol 7:e1001066 (doi:10.1371/journal.pcbi.1001066); "
        "Cook et al. 2019, Nature 571:63 (doi:10.1038/s41586-019-1352-7), SI 5 corrected July 2020; "
        "Witvliet et al. 2021, Nature 596:257 (doi:10.1038/s41586-021-03778-8), dataset 1; "
        "Witvliet et al. 2021, Nature 596:257 (doi:10.1038/s41586-021-03778-8), dataset 2; "
        "Witvliet et al. 2021, Nature 596:257 (doi:10.1038/s41586-021-03778-8), dataset 3; "
        "Witvliet et al. 2021, Nature 596:257 (doi:10.1038/s41586-021-03778-8), dataset 4; "
        "Witvliet et al. 2021, Nature 596:257 (doi:10.1038/s41586-021-03778-8), dataset 5; "
        "Witvliet et al. 2021, Nature 596:257 (doi:10.1038/s41586-021-03778-8), dataset 6; "
        "Witvliet et al. 2021, Nature 596:257 (doi:10.1038/s41586-021-03778-8), dataset 7; "
        "Witvliet et al. 2021, Nature 596:257 (doi:10.1038/s41586-021-03778-8), dataset 8; "
        "OpenWorm CElegansNeuronTables.xls (c302), after Varshney et al. 2011; "
        "Gleeson et al., cect (OpenWorm ConnectomeToolbox)"
    ),
    homepage="https://github.com/openworm/ConnectomeToolbox",
    loader="neuroharness.loaders.celegans.connectome:CelegansConnectome",
    redistribution=("allowed: the annotations are redistributed in the MIT-licensed cect 0.3.5 wheel (OpenWorm) "
                    "that the store is built from; cite each publication"),
    offline=("the annotations ship in the cect 0.3.5 wheel on PyPI: install it (pip install --no-deps cect==0.3.5; it is read in place) or pass --source with the wheel file or a folder of its data files. A consensus connectome CSV works too: python scripts/make_celegans_consensus_fixture.py --out DIR writes synthetic ones in the published layout, then --source DIR/<file>.csv"),
)

FUNATLAS = DatasetCard(
    name="celegans-funatlas",
    version="1.0",
    title="C. elegans signal-propagation atlas (Randi et al. 2023)",
    description=(
        "Responses of each neuron to optogenetic stimulation of each other neuron in "
        "whole-brain imaging of wild-type and unc-31 worms: amplitude (dFF), significance (q, q_eq) "
        "and observation counts (occ1), on the 302 canonical neurons. Dims strain x responding x stimulated."
    ),
    license="wormneuroatlas 0.0.7.3 is distributed under GPL-3.0-or-later (wheel metadata); cite Randi et al. 2023 for the data",
    citation=("Randi F, Sharma AK, Dvali S, Leifer AM (2023) Neural signal propagation atlas of Caenorhabditis elegans. "
              "Nature 623:406-414, doi:10.1038/s41586-023-06683-4"),
    homepage="https://github.com/leiferlab/wormneuroatlas",
    loader="neuroharness.loaders.celegans.funatlas:CelegansFunatlas",
    redistribution=("allowed: the atlas ships in the wormneuroatlas 0.0.7.3 wheel under GPL-3.0-or-later, which "
                    "permits redistribution under the same licence; cite Randi et al. 2023"),
    offline=("the atlas ships in the wormneuroatlas 0.0.7.3 wheel on PyPI: install it (pip install --no-deps wormneuroatlas==0.0.7.3; it is read in place) or pass --source with the wheel, a folder of its data files, or its funatlas.h5"),
)

ACTIVITY = DatasetCard(
    name="celegans-activity",
    version="1.0",
    title="Homogenized C. elegans whole-brain calcium activity (Simeon et al. 2024)",
    description=(
        "About 900 worms from 12 imaging studies, resampled to dt = 0.333 s and stored as a "
        "ragged array over samples with per-worm masks of labeled neurons on the 302 canonical neurons."
    ),
    license="MIT (HuggingFace dataset card of qsimeon/celegans_neural_data); cite each source study",
    citation=("Simeon Q, Astrom H, Kashyap A, Kording KP, Boyden ES (2024) Homogenized C. elegans neural activity "
              "and connectivity data. arXiv:2411.12091; and the 12 source studies (Kato 2015, Nichols 2017, Skora 2018, "
              "Kaplan 2020, Nejatbakhsh 2020, Yemini 2021, Uzel 2022, Dag 2023, Leifer/Randi 2023, Lin 2023, "
              "Flavell/Atanas 2023, Venkatachalam 2024)"),
    homepage="https://huggingface.co/datasets/qsimeon/celegans_neural_data",
    loader="neuroharness.loaders.celegans.activity:CelegansActivity",
    redistribution=("allowed: MIT (the Hugging Face dataset card of qsimeon/celegans_neural_data) permits "
                    "redistribution with the licence notice; cite each source study"),
    offline=("pass --source with a folder holding the collection's parquet files, or set $HF_ENDPOINT to a HuggingFace Hub mirror; python scripts/make_celegans_activity_fixture.py --out DIR writes synthetic worms in the same layout (then --source DIR)"),
)

CARDS = (CONNECTOME, FUNATLAS, ACTIVITY)
