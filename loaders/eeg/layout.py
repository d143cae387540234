"""Layout files: how one release of an EEG dataset is organised, declared in TOML or YAML instead of code.

A layout says which files are recordings (``[layout] formats``), where each
recording's subject, group, condition, session and device come from (a
metadata table, ``[metadata]``; a regular expression on the file's path,
``[names]``; fallbacks, ``[defaults]``), how raw values map to the canonical
groups and conditions (``[groups]``, ``[conditions]``), and per device how the
file's channel labels map to the canonical 10/20 names, which labels are
dropped, the reference and the units (``[devices.NAME]``, ``"*"`` for any
device). Every key is checked: an unknown key, a wrong type or a bad value is
a :class:`~neuroharness.errors.DataFormatError` naming the file, the table and
the key, and listing what is allowed.

Canonical channel names are those of MNE's ``standard_1020`` montage (called
``colin27_1020`` from MNE 1.13 on: same names) in its casing and order, with
the old names T3, T4, T5, T6 renamed T7, T8, P7, P8.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.resources
import re
import tomllib
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from neuroharness.errors import DataFormatError

from .recordings import GROUPS, OPTIONAL_FIELDS

# old 10/20 names -> their modern (10/10) names; the rename is recorded per recording
OLD_TO_NEW = {"T3": "T7", "T4": "T8", "T5": "P7", "T6": "P8"}
UNITS = {"auto": None, "V": "V", "mV": "mV", "uV": "uV", "µV": "uV", "μV": "uV"}
ID_FIELDS = ("subject", "group", "condition", "session", "device")
TABLE_FIELDS = ("file",) + ID_FIELDS + OPTIONAL_FIELDS
DEFAULT_FORMATS = ("edf", "bdf", "vhdr", "set", "fif", "gdf", "cnt")
PACKAGED = ("nszed", "repod")

ALLOWED = {
    "": ("layout", "metadata", "names", "defaults", "groups", "conditions", "devices"),
    "layout": ("name", "description", "common_sfreq", "formats"),
    "metadata": ("table", "columns", "sheet"),
    "metadata.columns": TABLE_FIELDS,
    "names": ("pattern",),
    "defaults": ID_FIELDS + OPTIONAL_FIELDS,
    "groups": GROUPS,
    "device": ("reference", "units", "channels", "strip_prefix", "strip_suffix", "ignore"),
}


# -- canonical channel names ---------------------------------------------------------------------------
def standard_montage():
    """MNE's 10/20 montage (``standard_1020``; ``colin27_1020`` in MNE >= 1.13, where the old name is deprecated)."""
    import mne

    for name in ("colin27_1020", "standard_1020"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                return mne.channels.make_standard_montage(name)
        except ValueError:
            continue
    raise DataFormatError("MNE has neither the 'colin27_1020' nor the 'standard_1020' montage; install mne >= 1.6")


@functools.lru_cache(maxsize=1)
def canonical_channels() -> tuple[str, ...]:
    """The canonical channel names in montage order (the old names T3/T4/T5/T6 left out: they are renamed)."""
    return tuple(n for n in standard_montage().ch_names if n not in OLD_TO_NEW)


@functools.lru_cache(maxsize=1)
def _by_folded_name() -> dict[str, str]:
    table = {n.casefold(): n for n in canonical_channels()}
    table.update({old.casefold(): new for old, new in OLD_TO_NEW.items()})
    return table


def canonical_name(label: str) -> str | None:
    """``label`` as a canonical name (case-insensitive; T3 -> T7 ...), or None if it is none."""
    return _by_folded_name().get(label.strip().casefold())


def montage_order(names) -> list[str]:
    """Canonical ``names`` sorted in montage order."""
    rank = {n: i for i, n in enumerate(canonical_channels())}
    return sorted(names, key=rank.__getitem__)


# -- the parsed layout -------------------------------------------------------------------------------------
class SkipRecording(Exception):
    """One recording cannot be converted; ``reason`` says why (the loader skips it and reports the reason)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ChannelMap:
    """The result of mapping one recording's labels: ``native`` (kept labels) and ``canonical`` (their names),
    both in montage order; ``renamed`` {native: canonical} of old->new 10/20 renames; ``dropped`` (ignored labels)."""

    native: tuple[str, ...]
    canonical: tuple[str, ...]
    renamed: dict
    dropped: tuple[str, ...]


@dataclass(frozen=True)
class Device:
    """``[devices.NAME]``: reference, units and the channel-label rules of one recording device."""

    name: str
    reference: str = "unknown"
    units: str = "auto"
    channels: dict = field(default_factory=dict)
    strip_prefix: tuple[str, ...] = ()
    strip_suffix: tuple[str, ...] = ()
    ignore: tuple[re.Pattern, ...] = ()

    def _stripped(self, label: str) -> str:
        s = label.strip()
        for p in self.strip_prefix:
            if s.startswith(p):
                s = s[len(p):]
                break
        for p in self.strip_suffix:
            if s.endswith(p) and len(s) > len(p):
                s = s[: -len(p)]
                break
        return s.strip()

    def map_channels(self, labels) -> ChannelMap:
        """Map a recording's channel labels; :class:`SkipRecording` names an unmappable label or a duplicate.

        Order of the rules: the explicit ``channels`` table; ``ignore`` (regex fullmatch, case-insensitive, on
        the label and on the label after stripping); ``strip_prefix`` / ``strip_suffix`` (the first matching
        one of each) then a case-insensitive match to the canonical names.
        """
        kept: dict[str, str] = {}  # canonical -> native
        renamed, dropped, unmapped = {}, [], []
        for label in labels:
            if label in self.channels:
                target = canonical_name(self.channels[label])
                if self.channels[label].strip().upper() in OLD_TO_NEW:
                    renamed[label] = target
            else:
                stripped = self._stripped(label)
                if any(p.fullmatch(label) or p.fullmatch(stripped) for p in self.ignore):
                    dropped.append(label)
                    continue
                target = canonical_name(stripped)
                if target is None:
                    unmapped.append(label)
                    continue
                if stripped.strip().upper() in OLD_TO_NEW:
                    renamed[label] = target
            if target in kept:
                raise SkipRecording(f"channels {kept[target]!r} and {label!r} both map to {target!r}; map or "
                                    f"ignore one of them in [devices.{self.name}] of the layout")
            kept[target] = label
        if unmapped:
            raise SkipRecording(
                f"channel(s) {', '.join(repr(u) for u in unmapped)} cannot be mapped to a 10/20 name by "
                f"[devices.{self.name}] of the layout; map them in its 'channels' table, strip a prefix/suffix, "
                "or drop them with 'ignore'")
        if not kept:
            raise SkipRecording(f"no EEG channel left after [devices.{self.name}] of the layout (all dropped: "
                                f"{', '.join(dropped) or 'no channel in the file'})")
        order = montage_order(kept)
        return ChannelMap(native=tuple(kept[c] for c in order), canonical=tuple(order), renamed=renamed,
                          dropped=tuple(dropped))


@dataclass(frozen=True)
class Layout:
    """A parsed layout file (see the module docstring); ``text``/``sha256`` are the file's, for provenance."""

    name: str
    common_sfreq: float
    formats: tuple[str, ...]
    description: str = ""
    metadata_table: str | None = None
    metadata_sheet: str | None = None
    columns: dict = field(default_factory=dict)
    pattern: re.Pattern | None = None
    defaults: dict = field(default_factory=dict)
    groups: dict = field(default_factory=dict)  # folded raw value -> canonical group
    conditions: dict | None = None  # folded raw value -> canonical condition; None: values kept as they are
    devices: dict = field(default_factory=dict)
    origin: str = ""
    text: str = ""
    sha256: str = ""

    @property
    def optional_fields(self) -> tuple[str, ...]:
        """The optional metadata fields (age, sex, panss_*, whodas) this layout provides, in canonical order."""
        given = set(self.columns) | set(self.defaults)
        if self.pattern is not None:
            given |= set(self.pattern.groupindex)
        return tuple(f for f in OPTIONAL_FIELDS if f in given)

    def is_recording(self, path: str) -> bool:
        """Whether ``path``'s suffix is one of the layout's formats (case-insensitive)."""
        return Path(path).suffix.lower().lstrip(".") in self.formats

    def group(self, raw: str) -> str | None:
        return self.groups.get(str(raw).strip().casefold())

    def condition(self, raw: str) -> str | None:
        if self.conditions is None:
            return str(raw).strip()
        return self.conditions.get(str(raw).strip().casefold())

    def device(self, name: str) -> Device:
        """The ``[devices.NAME]`` of ``name`` (then ``"*"``); :class:`SkipRecording` if neither exists."""
        if name in self.devices:
            return self.devices[name]
        if "*" in self.devices:
            return self.devices["*"]
        if not self.devices:
            return Device(name="*")
        raise SkipRecording(f"device {name!r} has no [devices.{name}] table in the layout and there is no "
                            f"[devices.\"*\"] fallback; the layout describes {', '.join(sorted(self.devices))}")


# -- reading ---------------------------------------------------------------------------------------------
def packaged_layout_text(name: str) -> str:
    """The text of a layout shipped with the package (``nszed``, ``repod``), read as package data."""
    if name not in PACKAGED:
        raise DataFormatError(f"no packaged layout {name!r}; the package ships {', '.join(PACKAGED)}")
    return (importlib.resources.files("neuroharness.loaders.eeg") / "layouts" / f"{name}.toml").read_text("utf-8")


def packaged_layout(name: str) -> Layout:
    """The parsed packaged layout ``name`` (``nszed`` or ``repod``)."""
    return parse_layout(packaged_layout_text(name), f"loaders/eeg/layouts/{name}.toml", "toml")


def load_layout(path) -> Layout:
    """Read and check the layout file at ``path`` (``.toml``, ``.yaml`` or ``.yml``)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataFormatError(f"layout file {path}: cannot be read ({e.strerror or e}); expected a TOML or YAML "
                              "layout file") from None
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise DataFormatError(f"layout file {path}: suffix {path.suffix or '(none)'!r}; expected .toml, .yaml or "
                              ".yml")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataFormatError(f"layout file {path}: not UTF-8 text (byte {e.start}); expected a TOML or YAML "
                              "layout file") from None
    return parse_layout(text, str(path), "toml" if suffix == ".toml" else "yaml")


def parse_layout(text: str, origin: str, fmt: str = "toml") -> Layout:
    """Parse and check the text of a layout file; ``origin`` (a file name) is what errors name."""
    try:
        return _parse(text, origin, fmt)
    except RecursionError:
        # tomllib, yaml and re all recurse on nesting: thousands of [[[...]]] or ((((...)))) exhaust the stack
        raise DataFormatError(f"layout file {origin}: nested too deeply (arrays, tables or regular-expression "
                              "groups); a layout file is a few flat tables, see loaders/eeg/layouts/nszed.toml") from None


def _parse(text: str, origin: str, fmt: str) -> Layout:
    if fmt == "toml":
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise DataFormatError(f"layout file {origin}: not valid TOML ({e}); see loaders/eeg/layouts/nszed.toml "
                                  "for an example") from None
    elif fmt == "yaml":
        import yaml

        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise DataFormatError(f"layout file {origin}: not valid YAML ({' '.join(str(e).split())})") from None
    else:
        raise DataFormatError(f"layout file {origin}: format {fmt!r}; expected 'toml' or 'yaml'")
    return _Checker(origin).layout(doc, text)


class _Checker:
    """Checks a layout document; each error names the file, the table and the key."""

    def __init__(self, origin: str):
        self.origin = origin

    def fail(self, where: str, msg: str):
        table = f"[{where}]" if where else "the top level"
        raise DataFormatError(f"layout file {self.origin}: {table}: {msg}")

    def table(self, doc, where: str, allowed=None) -> dict:
        if not isinstance(doc, dict):
            self.fail(where, f"is a {type(doc).__name__}, expected a table")
        allowed = ALLOWED.get(where, ()) if allowed is None else allowed
        for key in doc:
            if not isinstance(key, str):  # YAML reads `1:`, `true:` or `null:` as non-string keys
                self.fail(where, f"key {key!r} is a {type(key).__name__}, not a name; quote it in the file (YAML "
                                 "reads unquoted 1, 2.5, true or null as a number, boolean or null)")
            if key not in allowed:
                self.fail(where, f"unknown key {key!r}; allowed keys: {', '.join(allowed)}")
        return doc

    def string(self, doc, where, key, required=False, default=None) -> str | None:
        if key not in doc:
            if required:
                self.fail(where, f"lacks the required key {key!r}")
            return default
        value = doc[key]
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            self.fail(where, f"key {key!r} is {value!r}, expected a string")
        value = str(value)
        if required and not value.strip():
            self.fail(where, f"key {key!r} is empty, expected a non-empty string")
        return value

    def strings(self, doc, where, key) -> tuple[str, ...]:
        value = doc.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, (str, int)) and not isinstance(v, bool)
                                                   for v in value):
            self.fail(where, f"key {key!r} is {value!r}, expected a list of strings")
        return tuple(str(v) for v in value)

    def layout(self, doc, text: str) -> Layout:
        if doc is None:
            doc = {}
        self.table(doc, "")
        if "layout" not in doc:
            self.fail("", "lacks the required table [layout] (name, common_sfreq)")
        head = self.table(doc["layout"], "layout")
        name = self.string(head, "layout", "name", required=True)
        sfreq = head.get("common_sfreq")
        if sfreq is None:
            self.fail("layout", "lacks the required key 'common_sfreq' (Hz, the rate every recording is resampled to)")
        if isinstance(sfreq, bool) or not isinstance(sfreq, (int, float)) or not 0 < sfreq < 1e6 or sfreq != sfreq:
            self.fail("layout", f"key 'common_sfreq' is {sfreq!r}, expected a positive number of Hz (e.g. 250)")
        formats = self.strings(head, "layout", "formats") or DEFAULT_FORMATS
        formats = tuple(f.lower().lstrip(".") for f in formats)
        if not all(formats):
            self.fail("layout", "key 'formats' holds an empty suffix; expected suffixes like 'edf', 'vhdr'")

        table = sheet = None
        columns: dict = {}
        if "metadata" in doc:
            meta = self.table(doc["metadata"], "metadata")
            table = self.string(meta, "metadata", "table", required=True)
            sheet = self.string(meta, "metadata", "sheet")
            cols = self.table(meta.get("columns", {}), "metadata.columns")
            for key in cols:
                columns[key] = self.string(cols, "metadata.columns", key, required=True)
            missing = [f for f in ("file", "subject", "group") if f not in columns]
            if missing:
                self.fail("metadata.columns", f"lacks the required key(s) {missing}: the columns holding each "
                                              "recording's file, subject and group")

        pattern = None
        if "names" in doc:
            names = self.table(doc["names"], "names")
            source = self.string(names, "names", "pattern", required=True)
            try:
                pattern = re.compile(source)
            except re.error as e:
                self.fail("names", f"key 'pattern' is not a valid regular expression ({e})")
            bad = [g for g in pattern.groupindex if g not in ID_FIELDS + OPTIONAL_FIELDS]
            if bad:
                self.fail("names", f"pattern group {bad[0]!r} is not a field; named groups may be "
                                   f"{', '.join(ID_FIELDS + OPTIONAL_FIELDS)}")

        defaults = {}
        if "defaults" in doc:
            d = self.table(doc["defaults"], "defaults")
            defaults = {k: self.string(d, "defaults", k) for k in d}

        given = set(columns) | set(defaults) | (set(pattern.groupindex) if pattern is not None else set())
        missing = [f for f in ID_FIELDS if f not in given]
        if missing:
            self.fail("", f"no source for field(s) {missing}: give each as a [metadata.columns] column, a named "
                          "group of [names] pattern, or a [defaults] value")

        groups = {g: g for g in GROUPS}
        if "groups" in doc:
            g = self.table(doc["groups"], "groups")
            for canonical in g:
                for raw in self.strings(g, "groups", canonical):
                    folded = raw.strip().casefold()
                    if groups.get(folded, canonical) != canonical:
                        self.fail("groups", f"value {raw!r} is listed under both {groups[folded]!r} and "
                                            f"{canonical!r}")
                    groups[folded] = canonical

        conditions = None
        if "conditions" in doc:
            c = self.table(doc["conditions"], "conditions", allowed=tuple(doc["conditions"]))
            conditions = {}
            for canonical in c:
                if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", canonical):
                    self.fail("conditions", f"condition name {canonical!r}: expected letters, digits, '.', '_' or "
                                            "'-' (it becomes part of recording ids)")
                for raw in (canonical,) + self.strings(c, "conditions", canonical):
                    folded = raw.strip().casefold()
                    if conditions.get(folded, canonical) != canonical:
                        self.fail("conditions", f"value {raw!r} is listed under both {conditions[folded]!r} and "
                                                f"{canonical!r}")
                    conditions[folded] = canonical
            if not c:
                self.fail("conditions", "is empty; list canonical conditions, or leave the table out to keep the "
                                        "values as they are")
            default = defaults.get("condition")
            if default is not None and default.strip().casefold() not in conditions:
                self.fail("defaults", f"key 'condition' is {default!r}, which [conditions] does not list; expected "
                                      f"one of {', '.join(c)}")

        devices = {}
        if "devices" in doc:
            devs = self.table(doc["devices"], "devices", allowed=tuple(doc["devices"]))
            for dev_name, dev in devs.items():
                devices[dev_name] = self.device(dev_name, dev)

        return Layout(name=name, common_sfreq=float(sfreq), formats=formats,
                      description=self.string(head, "layout", "description", default="") or "",
                      metadata_table=table, metadata_sheet=sheet, columns=columns, pattern=pattern,
                      defaults=defaults, groups=groups, conditions=conditions, devices=devices, origin=self.origin,
                      text=text, sha256=hashlib.sha256(text.encode("utf-8")).hexdigest())

    def device(self, name: str, doc) -> Device:
        where = f"devices.{name}"
        self.table(doc, where, allowed=ALLOWED["device"])
        units = self.string(doc, where, "units", default="auto")
        if units not in UNITS:
            self.fail(where, f"key 'units' is {units!r}; expected one of 'auto', 'V', 'mV', 'uV'")
        channels = self.table(doc.get("channels", {}), f"{where}.channels", allowed=tuple(doc.get("channels", {})))
        mapping = {}
        for native in channels:
            target = self.string(channels, f"{where}.channels", native, required=True)
            if canonical_name(target) is None:
                self.fail(f"{where}.channels", f"channel {native!r} maps to {target!r}, which is not a 10/20 name of "
                                               "MNE's standard_1020 montage (e.g. 'Fp1', 'Fz', 'T7')")
            mapping[native] = target
        ignore = []
        for source in self.strings(doc, where, "ignore"):
            try:
                ignore.append(re.compile(source, re.IGNORECASE))
            except re.error as e:
                self.fail(where, f"key 'ignore': {source!r} is not a valid regular expression ({e})")
        return Device(name=name, reference=self.string(doc, where, "reference", default="unknown") or "unknown",
                      units=UNITS[units] or "auto", channels=mapping,
                      strip_prefix=self.strings(doc, where, "strip_prefix"),
                      strip_suffix=self.strings(doc, where, "strip_suffix"), ignore=tuple(ignore))
