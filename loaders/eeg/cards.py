"""Cards of the schizophrenia EEG datasets (standard library only: read by listings)."""
from __future__ import annotations

from ..card import DatasetCard

NSZED = DatasetCard(
    name="nszed",
    version="1.0",
    title="Nigerian Schizophrenia EEG Dataset (NSzED-v1): resting, arithmetic and auditory EEG of 37 patients "
          "and 22 controls",
    description=(
        "EEG on the international 10/20 montage of 59 adults (37 with schizophrenia, identified with the MINI and "
        "rated with PANSS and WHODAS, from OAUTHC Ile-Ife and Wesley Guild Hospital Ilesa; 22 healthy controls) "
        "in resting state, mental arithmetic and passive auditory stimulation (oddball / mismatch negativity and "
        "steady-state tones), recorded on more than one device. The release's host, file format, sampling rates "
        "and channel list are not confirmed, so the loader is driven by a layout file (loaders/eeg/layouts/"
        "nszed.toml, or your own with --layout) and a metadata table with one row per recording; any format MNE "
        "reads is accepted. Homogenized: standard 10/20 channel names (T3/T4/T5/T6 -> T7/T8/P7/P8, recorded), "
        "volts, annotations kept, native rate and device per recording, every recording resampled by MNE to the "
        "layout's common rate, recordings ragged (no padding). One group per recording; a root table of "
        "recordings (subject, group, condition, session, device, clinical scores). No public download URL is "
        "confirmed: prepare it from your copy with --source."
    ),
    license="unknown (not yet verified; check the terms of the copy you obtained)",
    citation=("Olateju EO, Ayodele KP, Mosaku SK (2023) Nigerian Schizophrenia EEG Dataset (NSzED) Towards "
              "Data-Driven Psychiatry in Africa. arXiv:2311.18484"),
    homepage="https://arxiv.org/abs/2311.18484",
    parts="recording",
    loader="neuroharness.loaders.eeg.loader:NszedLoader",
    redistribution="unknown: the licence of NSzED is not yet verified",
    offline=("no public download URL of NSzED is confirmed, so nothing is downloaded: pass --source DIR with your "
             "copy (recordings in any format MNE reads plus its metadata table) and, if its layout differs from "
             "loaders/eeg/layouts/nszed.toml, --layout FILE. A synthetic stand-in in the same layout: "
             "python scripts/make_eeg_fixture.py nszed DIR, then --source DIR"),
)

REPOD = DatasetCard(
    name="repod-schizophrenia",
    version="1.0",
    title="EEG in schizophrenia (Olejarczyk & Jernajczyk 2017, RepOD): eyes-closed rest of 14 patients and "
          "14 controls",
    description=(
        "15 minutes of eyes-closed resting EEG of 14 patients with paranoid schizophrenia and 14 healthy controls "
        "(Institute of Psychiatry and Neurology, Warsaw), 19 channels of the 10/20 montage (Fp1, Fp2, F7, F3, Fz, "
        "F4, F8, T3, C3, Cz, C4, T4, T5, P3, Pz, P4, T6, O1, O2) at 250 Hz, one EDF file per subject named hNN.edf "
        "(healthy) or sNN.edf (schizophrenia). Described by the layout file loaders/eeg/layouts/repod.toml through "
        "the same mechanism as NSzED and homogenized the same way (T3/T4/T5/T6 -> T7/T8/P7/P8, volts, one group "
        "per recording). Downloaded from RepOD's Dataverse server (md5-verified) or read from --source DIR. Used "
        "alone and as the other site of the cross-site protocol of eeg-schizophrenia."
    ),
    license="unknown (not yet verified; see the RepOD record doi:10.18150/repod.0107441)",
    citation=("Olejarczyk E, Jernajczyk W (2017) Graph-based analysis of brain connectivity in schizophrenia. "
              "PLoS ONE 12(11):e0188629, doi:10.1371/journal.pone.0188629; data: RepOD, "
              "doi:10.18150/repod.0107441"),
    homepage="https://doi.org/10.18150/repod.0107441",
    parts="recording",
    loader="neuroharness.loaders.eeg.loader:RepodLoader",
    redistribution="unknown: the licence of the RepOD record doi:10.18150/repod.0107441 is not yet verified",
    offline=("without --source the EDF files are downloaded from RepOD's Dataverse API (https://repod.icm.edu.pl, "
             "dataset doi:10.18150/repod.0107441, each checked against its published md5 and size); "
             "NEUROHARNESS_REPOD_URL (or an http(s) --source) names a mirror answering the same API. Offline: "
             "download the 28 EDF files by hand into one folder and pass --source DIR. A synthetic stand-in in the "
             "same layout: python scripts/make_eeg_fixture.py repod DIR, then --source DIR"),
)

CARDS = (NSZED, REPOD)
