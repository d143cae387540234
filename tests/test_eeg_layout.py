"""EEG layout files and metadata resolution (loaders/eeg/layout.py, metadata.py), on small files the tests write:
every key checked (unknown key -> error naming file, table, key, allowed keys), channel mapping rules (explicit
table, strip, case, old 10/20 names, ignore; unmappable and duplicate channels), and how each recording gets its
subject, group, condition, session, device and clinical fields (table, file-name pattern, defaults), with the
per-recording problems as skips naming the file and the source-wide ones as errors."""
from __future__ import annotations

import math
import re
import textwrap

import pandas as pd
import pytest

from neuroharness.errors import DataFormatError
from neuroharness.loaders.eeg import layout as lay
from neuroharness.loaders.eeg.layout import SkipRecording, load_layout, packaged_layout, parse_layout
from neuroharness.loaders.eeg.metadata import plan, read_table, recording_id

MINIMAL = """
[layout]
name = "t"
common_sfreq = 250
[defaults]
subject = "x"
group = "patient"
condition = "rest"
session = "1"
device = "d"
"""

TABLE_LAYOUT = """
[layout]
name = "tab"
common_sfreq = 250.0
formats = ["edf", "vhdr"]
[metadata]
table = "meta.csv"
[metadata.columns]
file = "file"
subject = "subject_id"
group = "group"
condition = "condition"
session = "session"
device = "device"
age = "age"
sex = "sex"
panss_total = "PANSS_total"
whodas = "WHODAS"
[defaults]
session = "1"
[groups]
patient = ["SZ"]
control = ["HC"]
[conditions]
rest = ["resting", "EC"]
arithmetic = ["arith"]
[devices."*"]
strip_prefix = ["EEG "]
strip_suffix = ["-REF"]
"""

META_HEADER = "file,subject_id,group,condition,session,device,age,sex,PANSS_total,WHODAS\n"


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def source(tmp_path, rows: str, files=(), table="meta.csv"):
    """A source folder: the metadata CSV (header + ``rows``) and empty recording files (plan does not read them)."""
    root = tmp_path / "src"
    root.mkdir(exist_ok=True)
    write(root / table, META_HEADER + textwrap.dedent(rows))
    for f in files:
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        (root / f).write_bytes(b"")
    return root


# -- the packaged layouts -------------------------------------------------------------------------------------
def test_packaged_nszed_layout_matches_the_fixture_spec():
    L = packaged_layout("nszed")
    assert (L.name, L.common_sfreq, L.metadata_table) == ("nszed", 250.0, "metadata.csv")
    assert L.columns == {"file": "file", "subject": "subject_id", "group": "group", "condition": "condition",
                         "session": "session", "device": "device", "age": "age", "sex": "sex",
                         "panss_total": "PANSS_total", "whodas": "WHODAS"}
    assert L.optional_fields == ("age", "sex", "panss_total", "whodas")
    assert (L.group("SZ"), L.group("hc"), L.group("Healthy"), L.group("x")) == ("patient", "control", "control", None)
    assert (L.condition("resting"), L.condition("Arithmetic"), L.condition("oddball"), L.condition("assr")) == \
        ("rest", "arithmetic", "auditory-oddball", "auditory-steady-state")
    assert L.condition("sleep") is None
    assert set(L.devices) == {"device_a", "device_b", "*"}
    assert L.formats == ("edf", "bdf", "vhdr", "set", "fif", "gdf", "cnt")
    # the sha256 is of the file's text, as stored in the store's root attributes
    import hashlib
    assert L.sha256 == hashlib.sha256(lay.packaged_layout_text("nszed").encode()).hexdigest()


def test_packaged_repod_layout_reads_names_from_the_file_name():
    L = packaged_layout("repod")
    assert (L.name, L.common_sfreq, L.formats, L.metadata_table) == ("repod", 250.0, ("edf",), None)
    m = L.pattern.fullmatch("s07.edf")
    assert m.groupdict() == {"subject": "s07", "group": "s"}
    assert L.pattern.fullmatch("x07.edf") is None and L.pattern.fullmatch("sub/s07.edf") is None
    assert (L.group("s"), L.group("h")) == ("patient", "control")
    assert L.defaults == {"condition": "rest", "session": "1", "device": "repod"}
    assert L.optional_fields == ()


def test_yaml_layout_equals_the_toml_one(tmp_path):
    toml = write(tmp_path / "a.toml", TABLE_LAYOUT)
    yaml_text = """
    layout: {name: tab, common_sfreq: 250.0, formats: [edf, vhdr]}
    metadata:
      table: meta.csv
      columns: {file: file, subject: subject_id, group: group, condition: condition, session: session,
                device: device, age: age, sex: sex, panss_total: PANSS_total, whodas: WHODAS}
    defaults: {session: "1"}
    groups: {patient: [SZ], control: [HC]}
    conditions: {rest: [resting, EC], arithmetic: [arith]}
    devices:
      "*": {strip_prefix: ["EEG "], strip_suffix: ["-REF"]}
    """
    a, b = load_layout(toml), load_layout(write(tmp_path / "a.yaml", yaml_text))
    for key in ("name", "common_sfreq", "formats", "metadata_table", "columns", "defaults", "groups", "conditions",
                "devices", "optional_fields"):
        assert getattr(a, key) == getattr(b, key), key
    assert a.sha256 != b.sha256 and b.origin.endswith("a.yaml")


# -- every key is checked ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("edit, table, key", [
    (("[layout]", "[layout]\ncolour = 1"), "[layout]", "colour"),
    (("[metadata]", "[extra]\nx = 1\n[metadata]"), "the top level", "extra"),
    (('whodas = "WHODAS"', 'whodas = "WHODAS"\nbmi = "BMI"'), "[metadata.columns]", "bmi"),
    (("[groups]", "[groups]\nhealthy = ['H']"), "[groups]", "healthy"),
    (('strip_suffix = ["-REF"]', 'strip_suffix = ["-REF"]\nrefrence = "Cz"'), '[devices.*]', "refrence"),
    (("[defaults]", "[defaults]\nfile = 'a.edf'"), "[defaults]", "file"),
])
def test_unknown_key_names_file_table_key_and_allowed(tmp_path, edit, table, key):
    path = write(tmp_path / "bad.toml", TABLE_LAYOUT.replace(*edit, 1))
    with pytest.raises(DataFormatError) as e:
        load_layout(path)
    msg = str(e.value)
    assert msg.startswith(f"layout file {path}: {table}: unknown key {key!r}; allowed keys: "), msg
    allowed = {"[layout]": "name, description, common_sfreq, formats",
               "the top level": "layout, metadata, names, defaults, groups, conditions, devices",
               "[groups]": "patient, control",
               "[devices.*]": "reference, units, channels, strip_prefix, strip_suffix, ignore"}
    if table in allowed:
        assert msg.endswith(allowed[table])


@pytest.mark.parametrize("edit, message", [
    (("common_sfreq = 250.0", 'common_sfreq = "fast"'),
     r"\[layout\]: key 'common_sfreq' is 'fast', expected a positive number of Hz"),
    (("common_sfreq = 250.0", "common_sfreq = -5"), r"key 'common_sfreq' is -5, expected a positive number"),
    (('name = "tab"', ""), r"\[layout\]: lacks the required key 'name'"),
    (('strip_suffix = ["-REF"]', 'strip_suffix = ["-REF"]\nunits = "nV"'),
     r"\[devices\.\*\]: key 'units' is 'nV'; expected one of 'auto', 'V', 'mV', 'uV'"),
    (('strip_suffix = ["-REF"]', 'strip_suffix = ["-REF"]\nchannels = { "E1" = "Cheek" }'),
     r"\[devices\.\*\.channels\]: channel 'E1' maps to 'Cheek', which is not a 10/20 name"),
    (('strip_suffix = ["-REF"]', 'strip_suffix = ["-REF"]\nignore = ["ECG("]'),
     r"key 'ignore': 'ECG\(' is not a valid regular expression"),
    (('file = "file"\n', ""), r"\[metadata\.columns\]: lacks the required key\(s\) \['file'\]"),
    (("[conditions]", "[conditions]\n'rest state' = ['r']"), r"condition name 'rest state'"),
    (('arithmetic = ["arith"]', 'arithmetic = ["arith", "EC"]'),
     r"\[conditions\]: value 'EC' is listed under both 'rest' and 'arithmetic'"),
    (('control = ["HC"]', 'control = ["HC", "sz"]'), r"value 'sz' is listed under both 'patient' and 'control'"),
    (('session = "1"', 'condition = "sleep"'), r"\[defaults\]: key 'condition' is 'sleep', which \[conditions\] "
                                               r"does not list"),
    (('device = "device"\n', ""), r"the top level: no source for field\(s\) \['device'\]"),
    (("formats = [\"edf\", \"vhdr\"]", "formats = 3"), r"key 'formats' is 3, expected a list of strings"),
])
def test_bad_values_name_file_table_and_key(tmp_path, edit, message):
    assert edit[0] in TABLE_LAYOUT
    path = write(tmp_path / "bad.toml", TABLE_LAYOUT.replace(*edit, 1))
    with pytest.raises(DataFormatError, match=re.escape(f"layout file {path}: ") + ".*" + message):
        load_layout(path)


def test_unparsable_and_misnamed_layout_files(tmp_path):
    with pytest.raises(DataFormatError, match=r"bad\.toml: not valid TOML"):
        load_layout(write(tmp_path / "bad.toml", "[layout\nname="))
    with pytest.raises(DataFormatError, match=r"bad\.yaml: not valid YAML"):
        load_layout(write(tmp_path / "bad.yaml", "layout: [a, b\n"))
    with pytest.raises(DataFormatError, match=r"layout\.json: suffix '\.json'; expected \.toml, \.yaml or \.yml"):
        load_layout(write(tmp_path / "layout.json", "{}"))
    with pytest.raises(DataFormatError, match=r"lacks the required table \[layout\]"):
        load_layout(write(tmp_path / "empty.yaml", ""))
    with pytest.raises(DataFormatError, match=r"\[names\]: pattern group 'patient' is not a field"):
        parse_layout(MINIMAL + "[names]\npattern = '(?P<patient>.*)'\n", "x.toml")
    with pytest.raises(DataFormatError, match=r"\[names\]: key 'pattern' is not a valid regular expression"):
        parse_layout(MINIMAL + "[names]\npattern = '(?P<subject>'\n", "x.toml")


# -- channel mapping ---------------------------------------------------------------------------------------------
def test_canonical_names_are_the_montage_names_without_the_old_ones():
    names = lay.canonical_channels()
    assert names[:3] == ("Fp1", "Fpz", "Fp2") and "T7" in names and "P8" in names
    assert not {"T3", "T4", "T5", "T6"} & set(names)
    assert len(names) == 90  # 94 montage positions, 4 of them old names
    assert [lay.canonical_name(x) for x in ("FP1", "fz", "T3", "t6", "CPZ", "Nose")] == \
        ["Fp1", "Fz", "T7", "P8", "CPz", None]


def test_device_a_labels_map_with_renames_and_drops_recorded():
    dev = packaged_layout("nszed").device("device_a")
    labels = ["EEG Fp1-REF", "EEG T3-REF", "EEG O2-REF", "ECG", "EEG T6-REF", "Photic", "EEG Cz-REF"]
    m = dev.map_channels(labels)
    assert m.canonical == ("Fp1", "T7", "Cz", "P8", "O2")  # montage order, not file order
    assert m.native == ("EEG Fp1-REF", "EEG T3-REF", "EEG Cz-REF", "EEG T6-REF", "EEG O2-REF")
    assert m.renamed == {"EEG T3-REF": "T7", "EEG T6-REF": "P8"}
    assert m.dropped == ("ECG", "Photic")


def test_device_b_upper_case_names_match_case_insensitively():
    m = packaged_layout("nszed").device("device_b").map_channels(["FP1", "FZ", "T7", "P7", "O2", "CZ"])
    assert m.canonical == ("Fp1", "Fz", "T7", "Cz", "P7", "O2")
    assert m.native == ("FP1", "FZ", "T7", "CZ", "P7", "O2")
    assert m.renamed == {} and m.dropped == ()


def test_explicit_channels_win_over_rules_and_record_old_name_renames():
    L = parse_layout(MINIMAL + textwrap.dedent("""
        [devices.d]
        channels = { "EEG Fp1-REF" = "Fp2", "Chan 7" = "t4" }
        strip_prefix = ["EEG "]
        strip_suffix = ["-REF"]
        ignore = ["EOG.*"]
        """), "x.toml")
    m = L.device("d").map_channels(["EEG Fp1-REF", "Chan 7", "EOG left", "EEG eog-REF", "EEG Oz-REF"])
    assert dict(zip(m.native, m.canonical)) == {"EEG Fp1-REF": "Fp2", "Chan 7": "T8", "EEG Oz-REF": "Oz"}
    assert m.renamed == {"Chan 7": "T8"}
    assert m.dropped == ("EOG left", "EEG eog-REF")  # ignore matches the label or the stripped label


def test_unmappable_and_duplicate_channels_are_skip_reasons_naming_them():
    dev = packaged_layout("nszed").device("device_a")
    with pytest.raises(SkipRecording) as e:
        dev.map_channels(["EEG Fp1-REF", "EEG X9-REF", "Pulse"])
    assert e.value.reason.startswith("channel(s) 'EEG X9-REF', 'Pulse' cannot be mapped to a 10/20 name by "
                                     "[devices.device_a] of the layout")
    with pytest.raises(SkipRecording, match=r"channels 'EEG T3-REF' and 'EEG T7-REF' both map to 'T7'"):
        dev.map_channels(["EEG T3-REF", "EEG T7-REF"])
    with pytest.raises(SkipRecording, match=r"no EEG channel left .*all dropped: ECG, Photic"):
        dev.map_channels(["ECG", "Photic"])


def test_device_without_table_and_without_fallback_is_a_skip():
    L = parse_layout(MINIMAL + "[devices.a]\nreference = 'Cz'\n", "x.toml")
    assert L.device("a").reference == "Cz"
    with pytest.raises(SkipRecording, match=r"device 'd' has no \[devices.d\] table in the layout .*describes a"):
        L.device("d")
    assert parse_layout(MINIMAL, "x.toml").device("any").name == "*"  # no [devices] at all: MNE's labels as they are


# -- metadata -> recordings ------------------------------------------------------------------------------------------
def test_plan_resolves_fields_groups_conditions_and_clinical_nan(tmp_path):
    root = source(tmp_path, """\
        a/S1_rest.edf,S1,SZ,resting,1,A,30,M,80,20
        a/S2_rest.edf,S2,HC,EC,,A,41,F,,
        b/S1 arith.vhdr,S1,sz,arith,2,B,30,M,80,20
        """, files=["a/S1_rest.edf", "a/S2_rest.edf", "b/S1 arith.vhdr", "b/S1 arith.eeg", "b/S1 arith.vmrk"])
    L = load_layout(write(tmp_path / "l.toml", TABLE_LAYOUT))
    infos, skipped, table = plan(root, L)
    assert skipped == [] and table == {"meta.csv": root / "meta.csv"}
    assert [i.recording for i in infos] == ["S1_arithmetic_ses-2_B", "S1_rest_ses-1_A", "S2_rest_ses-1_A"]
    by = {i.recording: i for i in infos}
    s2 = by["S2_rest_ses-1_A"]
    assert (s2.subject, s2.group, s2.condition, s2.session, s2.device, s2.file) == \
        ("S2", "control", "rest", "1", "A", "a/S2_rest.edf")  # session from [defaults]
    assert s2.extra["age"] == 41.0 and s2.extra["sex"] == "F"
    assert math.isnan(s2.extra["panss_total"]) and math.isnan(s2.extra["whodas"])
    s1 = by["S1_arithmetic_ses-2_B"]
    assert (s1.group, s1.condition, s1.extra["panss_total"], s1.file) == ("patient", "arithmetic", 80.0,
                                                                           "b/S1 arith.vhdr")


@pytest.mark.parametrize("row, reason", [
    ("x.edf,S9,SZ,resting,1,A,,,,\n", None),  # the good one, for contrast
    ("x.edf,S9,MCI,resting,1,A,,,,\n",
     "group 'MCI' (column 'group', row 3, of the metadata table meta.csv) is neither patient nor control; expected "
     "one of control, hc, patient, sz (the [groups] table of the layout)"),
    ("x.edf,S9,SZ,sleep,1,A,,,,\n",
     "condition 'sleep' (column 'condition', row 3, of the metadata table meta.csv) is not listed in the "
     "[conditions] table of the layout; expected one of arith, arithmetic, ec, rest, resting"),
    ("x.edf,S9,SZ,resting,1,A,old,,,\n",
     "age is 'old' (column 'age', row 3, of the metadata table meta.csv), expected a finite number or an empty cell"),
    ("x.edf,,SZ,resting,1,A,,,,\n", "no subject (column 'subject_id' gives none, and [defaults] has none)"),
    ("y.edf,S9,SZ,resting,1,A,,,,\n",
     "not listed in the metadata table meta.csv (column 'file'), so its subject and group are unknown; add a row "
     "for it"),
])
def test_per_recording_problems_skip_that_file_with_a_reason(tmp_path, row, reason):
    root = source(tmp_path, "ok.edf,S1,HC,resting,1,A,,,,\n" + row, files=["ok.edf", "x.edf"])
    infos, skipped, _ = plan(root, load_layout(write(tmp_path / "l.toml", TABLE_LAYOUT)))
    if reason is None:
        assert [i.file for i in infos] == ["ok.edf", "x.edf"] and skipped == []
        return
    assert [i.file for i in infos] == ["ok.edf"]  # the bad recording does not stop the others
    expected = [{"file": "x.edf", "reason": reason}]
    if row.startswith("y.edf"):  # x.edf has no row, and the row names a file that does not exist
        expected.append({"file": "y.edf", "reason": "listed in row 3 of the metadata table meta.csv, but no such "
                                                   "file under the source"})
    assert skipped == expected


def test_source_wide_problems_are_errors(tmp_path):
    L = load_layout(write(tmp_path / "l.toml", TABLE_LAYOUT))
    root = source(tmp_path, "a.edf,S1,SZ,resting,1,A,,,,\nb.edf,S1,SZ,EC,1,A,,,,\n", files=["a.edf", "b.edf"])
    with pytest.raises(DataFormatError, match=r"recordings 'a.edf' and 'b.edf' both get the recording id "
                                              r"'S1_rest_ses-1_A'"):
        plan(root, L)
    root = source(tmp_path, "a.edf,S1,SZ,resting,1,A,,,,\na.edf,S2,SZ,resting,1,A,,,,\n", files=["a.edf"])
    with pytest.raises(DataFormatError, match=r"meta\.csv: rows 2 and 3 both describe file 'a.edf'"):
        plan(root, L)
    (root / "meta.csv").write_text("file,subject,group\na.edf,S1,SZ\n")
    with pytest.raises(DataFormatError, match=r"meta\.csv: no column 'subject_id' \(field subject\), 'condition' "
                                              r"\(field condition\).*it has columns 'file', 'subject', 'group'"):
        plan(root, L)
    (root / "meta.csv").unlink()
    with pytest.raises(DataFormatError, match=r"metadata table .*meta\.csv: no such file"):
        plan(root, L)


def test_names_pattern_defaults_and_conflicts(tmp_path):
    root = tmp_path / "repod"
    root.mkdir()
    for f in ("h01.edf", "s02.edf", "notes.txt", "x03.edf", ".hidden/s04.edf"):
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        (root / f).write_bytes(b"")
    infos, skipped, table = plan(root, packaged_layout("repod"))
    assert [(i.recording, i.subject, i.group, i.condition, i.session, i.device) for i in infos] == [
        ("h01_rest_ses-1_repod", "h01", "control", "rest", "1", "repod"),
        ("s02_rest_ses-1_repod", "s02", "patient", "rest", "1", "repod")]
    assert table == {}
    assert skipped == [{"file": "x03.edf", "reason": "its path does not match the [names] pattern "
                                                     "'(?P<subject>(?P<group>[hs])\\\\d{2})\\\\.edf' of the layout"}]
    # a table and a pattern that disagree: a skip naming both sources
    text = TABLE_LAYOUT + "[names]\npattern = '(?P<subject>S\\d)_.*'\n"
    root = source(tmp_path, "S1_a.edf,S2,SZ,resting,1,A,,,,\n", files=["S1_a.edf"])
    _, skipped, _ = plan(root, parse_layout(text, "l.toml"))
    assert skipped == [{"file": "S1_a.edf", "reason": "subject is 'S1' by the [names] pattern but 'S2' in column "
                                                      "'subject_id' (row 2) of the metadata table meta.csv"}]


def test_tsv_and_xlsx_tables_read_like_csv(tmp_path):
    frame = pd.DataFrame({"file": ["a.edf"], "subject_id": ["S1"], "group": ["HC"], "condition": ["resting"],
                          "session": [1], "device": ["A"], "age": [33], "sex": ["F"], "PANSS_total": [None],
                          "WHODAS": [None]})
    for name, write_it in (("m.tsv", lambda p: frame.to_csv(p, sep="\t", index=False)),
                           ("m.xlsx", lambda p: frame.to_excel(p, index=False))):
        root = tmp_path / name.replace(".", "_")
        root.mkdir()
        write_it(root / name)
        (root / "a.edf").write_bytes(b"")
        L = parse_layout(TABLE_LAYOUT.replace('table = "meta.csv"', f'table = "{name}"'), "l.toml")
        infos, skipped, _ = plan(root, L)
        assert skipped == []
        (i,) = infos
        assert (i.recording, i.group, i.extra["age"], i.extra["sex"]) == ("S1_rest_ses-1_A", "control", 33.0, "F")
        assert math.isnan(i.extra["whodas"])
    with pytest.raises(DataFormatError, match=r"m\.json: suffix '\.json'; expected \.csv, \.tsv or \.xlsx"):
        read_table(tmp_path / "m.json")


def test_recording_id_replaces_odd_characters():
    assert recording_id("S 1", "rest", "1/2", "dev:a") == "S-1_rest_ses-1-2_dev-a"
    assert recording_id("NSZ001", "auditory-oddball", "1", "device_a") == "NSZ001_auditory-oddball_ses-1_device_a"
