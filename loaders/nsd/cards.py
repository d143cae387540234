"""Card of the NSD / Algonauts 2023 dataset (standard library only: read by listings)."""
from __future__ import annotations

from ..card import DatasetCard

NSD = DatasetCard(
    name="nsd-algonauts2023",
    version="1.0",
    title="NSD fMRI as packaged by the Algonauts 2023 challenge (7T responses to natural scenes, fsaverage)",
    description=(
        "Natural Scenes Dataset 7T fMRI of 8 subjects viewing COCO images, in the layout of the Algonauts 2023 "
        "challenge: session-z-scored betas (betas_fithrf_GLMdenoise_RR) averaged over repeats, on the fsaverage "
        "vertices of NSDGeneral plus RSC (19,004 left + 20,544 right for subj01-05 and subj07; 18,978 + 20,220 for "
        "subj06; 18,981 + 20,530 for subj08). Train images 9,841 (subj01, 02, 05, 07), 9,082 (subj03, 06), 8,779 "
        "(subj04, 08); challenge test images 159, 293, 395 respectively, whose responses come from the last 3 NSD "
        "sessions (rebuilt from the public NSD files, or NaN when the source lacks them). Per vertex: hemisphere, "
        "fsaverage index, six ROI classes (prf-visualrois, floc-bodies/faces/places/words, streams), the noise "
        "ceiling where known. Images 425 x 425 RGB uint8, one chunk each. One group per subject. Never "
        "redistributed: every user prepares it from a copy obtained under the NSD terms."
    ),
    license="NSD Terms and Conditions (no redistribution)",
    citation=("Allen EJ, St-Yves G, Wu Y, Breedlove JL, Prince JS, Dowdle LT, Nau M, Caron B, Pestilli F, Charest I, "
              "Hutchinson JB, Naselaris T, Kay K (2022) A massive 7T fMRI dataset to bridge cognitive neuroscience "
              "and artificial intelligence. Nature Neuroscience 25:116-126, doi:10.1038/s41593-021-00962-x; "
              "Gifford AT, Lahner B, Saba-Sadiya S, Vilas MG, Lascelles A, Oliva A, Kay K, Roig G, Cichy RM (2023) "
              "The Algonauts Project 2023 Challenge: How the Human Brain Makes Sense of Natural Scenes. "
              "arXiv:2301.03198"),
    homepage="https://naturalscenesdataset.org",
    parts="subject",
    loader="neuroharness.loaders.nsd.loader:NsdAlgonautsLoader",
    redistribution=("forbidden: the NSD Terms and Conditions do not allow redistributing NSD data; every user "
                    "prepares it from a copy obtained under the NSD Data Access Agreement"),
    offline=("NSD may not be redistributed, so nothing is downloaded for you: accept the NSD Data Access Agreement "
             "(linked from the NSD manual, https://cvnlab.slite.page), then pass --source with the Algonauts 2023 "
             "challenge release (a folder of subj01..subj08, or one subjXX folder; the Google form is linked from "
             "the README of github.com/gifale95/algonauts_2023), or with the NSD files "
             "(aws s3 sync s3://natural-scenes-dataset DIR, or --source s3://natural-scenes-dataset directly; plus the "
             "devkit's nsdgeneralRSC labels, found through $NEUROHARNESS_NSD_RSC); "
             "--only subj01 ... selects subjects. Synthetic stand-ins for trying the harness offline: "
             "python scripts/make_nsd_challenge_fixture.py DIR (the challenge layout) or "
             "python scripts/make_nsd_bucket_fixture.py DIR (the NSD-files layout), then --source DIR"),
)

CARDS = (NSD,)
