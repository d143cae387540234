"""The README's code blocks run here, so that its examples cannot rot.

Blocks are read from README.md together with the heading they sit under. Every block needs an entry in
:data:`BLOCKS`: ``test_every_block_is_decided`` fails on a new block without one, and on an entry whose
block is gone. What is done with each block, and why:

- **Quickstart** (bash): not run here. ``.ci/run`` runs its second line, which installs the test extras
  and runs this suite; the first line installs the package and trains four baselines over three seeds
  (minutes). What that command prints is checked instead (next item).
- **What the first command prints** (a Markdown table, not fenced): compared line for line with
  ``neuroharness leaderboard celegans-structure-function``. It reads only the official records, so it is
  deterministic.
- **What next** (bash): run as written on the real C. elegans data. The ``results`` folder that the
  Quickstart would have left is stood in for by a one-seed run of two quick baselines.
- **Try it offline** (bash): run as written in an empty cache and an empty working folder, with every
  connection off the loopback refused. The generators run in their small modes (seconds). The two
  ``--source <wheel>`` lines get wheels rebuilt from the installed cect and wormneuroatlas (the pinned
  data members, which the loader checks by sha256), and must give the same stores as the installed copy.
  The environment variables in the section's table must be exactly those that ``loaders/`` reads.
- **Datasets** (python): run in an empty cache, so "prepared on first use" is tested as well.
- **Submitting predictions** (bash): run as written on the real data. ``my_predictions.parquet`` is
  made from ``pairs.parquet`` before the first command that reads it (random scores stand in for the
  user's model). The counts the README states are asserted.
- **FISBe, VesselGraph** (bash): checked, not run. They need the real releases (Zenodo, the LRZ hosts,
  unreachable from CI) and train for minutes to hours. Every verb and flag a command uses must be listed
  by its ``neuroharness VERB --help``, the whole command line must parse, and its task, dataset, model,
  option and graph names must exist.
- **NSD** (bash): run as written, offline, in an empty cache: a synthetic subject (NSD itself may not be
  redistributed), prepared, two baselines run and ranked. The scores the text after the block states are asserted.
- **EEG** (bash): run as written, offline, in an empty cache: the synthetic NSzED-shaped fixture (neither
  release is reachable from CI), prepared, two baselines run and ranked. The scores the text states are asserted.
- **Stores anywhere** (bash): checked like FISBe's (`aws s3 sync` is not a neuroharness command and is skipped;
  tests/test_store_urls.py runs the same steps against a moto S3 server).
- **Hugging Face `datasets`** (bash, python): run as written on the real C. elegans data, the bash block
  then the python block in the same working folder; the values its comments state are asserted.
- **Your own model** (python): run on the real data; the columns and orientation that its comments
  state are asserted. (toml): parsed; the entry point must be the example plugin's, for a registered task,
  naming a factory that the plugin package defines.
- **Performance** (bash): not run (minutes and gigabytes). pytest collects the benchmarks with the same
  arguments, which checks the path, the pytest-benchmark flags and the column names.
- **Layout** (plain fence): a file tree, not printed output. Every folder and file it names must exist.

Python blocks run statement by statement, in one namespace per section, as a reader pastes them. A
statement whose trailing comment is a Python literal (``print(x)   # 2.0``) must show that value: what it
prints, or else what it evaluates to. ``neuroharness`` commands run in-process through
``neuroharness.cli.main`` (as in tests/test_cli.py); ``python scripts/...`` runs in a subprocess.

Real data: celegans-connectome and celegans-funatlas are prepared from the cect 0.3.5 and wormneuroatlas
0.0.7.3 wheels installed in the venv (the Quickstart's second command installs them). Where they are not
installed, the tests that need them are skipped with that reason, as in tests/test_celegans_loaders.py.
"""
from __future__ import annotations

import ast
import contextlib
import importlib.util
import io
import json
import re
import shlex
import socket
import subprocess
import sys
import tokenize
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import neuroharness as nh
from neuroharness import progress
from neuroharness.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TASK = "celegans-structure-function"

HAVE_CELEGANS = importlib.util.find_spec("cect") is not None and importlib.util.find_spec("wormneuroatlas") is not None
CELEGANS_REASON = ("needs the cect and wormneuroatlas wheels installed "
                   "(pip install --no-deps cect==0.3.5 wormneuroatlas==0.0.7.3)")
needs_celegans = pytest.mark.skipif(not HAVE_CELEGANS, reason=CELEGANS_REASON)

QUICKSTART, OUTPUT, WHAT_NEXT, OFFLINE = "Quickstart", "What the first command prints", "What next", "Try it offline"
DATASETS, SUBMIT, OWN_MODEL = "Datasets", "Submitting predictions", "Your own model"
FISBE = "Dataset `fisbe` and task `fisbe-instance-segmentation`"
VESSELGRAPH = "Dataset `vesselgraph` and tasks `vesselgraph-link-prediction`, `vesselgraph-vessel-classification`"
NSD = "Dataset `nsd-algonauts2023` and task `nsd-encoding`"
EEG = "Datasets `nszed`, `repod-schizophrenia` and task `eeg-schizophrenia`"
HF_EXPORT = "Hugging Face `datasets`"
STORES_ANYWHERE = "Stores anywhere"
PERFORMANCE, LAYOUT = "Performance", "Layout"

# (heading, fence language) -> what is done with the block (the module docstring says why)
BLOCKS = {
    (QUICKSTART, "bash"): "run by .ci/run (second line)",
    (WHAT_NEXT, "bash"): "run",
    (OFFLINE, "bash"): "run",
    (DATASETS, "python"): "run",
    (SUBMIT, "bash"): "run",
    (FISBE, "bash"): "checked against --help and the parser",
    (VESSELGRAPH, "bash"): "checked against --help and the parser",
    (NSD, "bash"): "run",
    (EEG, "bash"): "run",
    (HF_EXPORT, "bash"): "run",
    (STORES_ANYWHERE, "bash"): "checked against --help and the parser",
    (HF_EXPORT, "python"): "run",
    (OWN_MODEL, "python"): "run",
    (OWN_MODEL, "toml"): "checked against the example plugin",
    (PERFORMANCE, "bash"): "collected by pytest",
    (LAYOUT, ""): "every path checked",
}


# -- reading the README ------------------------------------------------------------
@dataclass(frozen=True)
class Block:
    section: str  # the nearest heading above, without its #s
    lang: str  # "" for a plain fence
    line: int  # README line of the block's first code line
    code: str


_FENCE = re.compile(r"^```(\S*)\s*$")


def parse_blocks(text: str) -> list[Block]:
    blocks, section, lang, start, body = [], "", None, 0, []
    for i, line in enumerate(text.splitlines(), 1):
        if lang is None:
            m = _FENCE.match(line)
            if m:
                lang, start, body = m.group(1), i + 1, []
            elif line.startswith("#"):
                section = line.lstrip("#").strip()
        elif line.rstrip() == "```":
            blocks.append(Block(section, lang, start, "\n".join(body) + "\n"))
            lang = None
        else:
            body.append(line)
    assert lang is None, f"README.md:{start - 1}: this fence is never closed"
    return blocks


def readme_text() -> str:
    return README.read_text(encoding="utf-8")


def block(section: str, lang: str) -> Block:
    found = [b for b in parse_blocks(readme_text()) if (b.section, b.lang) == (section, lang)]
    assert len(found) == 1, f"README.md: expected one ```{lang} block under '{section}', found {len(found)}"
    return found[0]


def section_text(heading: str) -> str:
    """The README text under ``heading`` up to the next heading of any level (fences skipped)."""
    lines, inside, fenced = [], False, False
    for line in readme_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and line.startswith("#"):
            if inside:
                break
            inside = line.lstrip("#").strip() == heading
            continue
        if inside:
            lines.append(line)
    assert lines, f"README.md has no section '{heading}'"
    return "\n".join(lines)


def commands(b: Block) -> list[tuple[int, list[str]]]:
    """``(README line, argv)`` per command of a bash block: continuation lines joined, comments dropped."""
    out, pending, first = [], "", None
    for offset, line in enumerate(b.code.splitlines()):
        first = b.line + offset if first is None else first
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        argv = shlex.split(pending + line, comments=True)
        if argv:
            out.append((first, argv))
        pending, first = "", None
    assert not pending, f"README.md:{first}: the block ends in a line continuation"
    return out


def comment_of(b: Block) -> dict[int, str]:
    """README line -> text of the comment ending that line, for each commented command or statement."""
    if b.lang == "python":
        toks = tokenize.generate_tokens(io.StringIO(b.code).readline)
        return {b.line + t.start[0] - 1: t.string.lstrip("#").strip() for t in toks if t.type == tokenize.COMMENT}
    out = {}
    for offset, line in enumerate(b.code.splitlines()):
        code, sep, comment = line.partition("  #")
        if sep:
            out[b.line + offset] = comment.strip()
    return out


def comment_on(b: Block, text: str) -> str:
    """The comment of the one line of ``b`` that contains ``text``."""
    comments = comment_of(b)
    hits = [comments.get(b.line + i, "") for i, line in enumerate(b.code.splitlines()) if text in line]
    assert len(hits) == 1, f"README.md:{b.line}: expected one line with {text!r} in the block, found {len(hits)}"
    return hits[0]


# -- running -----------------------------------------------------------------------
@dataclass
class Ran:
    line: int
    argv: list[str]
    out: str
    err: str


def run_command(line: int, argv: list[str], cwd: Path) -> Ran:
    """Run one README command in ``cwd``; it must exit 0."""
    where = f"README.md:{line}: {shlex.join(argv)}"
    if argv[0] == "neuroharness":
        out, err = io.StringIO(), io.StringIO()
        with contextlib.chdir(cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv[1:])
            except SystemExit as e:  # argparse: --help, or a usage error
                code = e.code
        out, err = out.getvalue(), err.getvalue()
    elif argv[0] == "python" and len(argv) > 1 and argv[1].startswith("scripts/"):
        proc = subprocess.run([sys.executable, str(ROOT / argv[1]), *argv[2:]], cwd=cwd, capture_output=True,
                              text=True, timeout=300)
        code, out, err = proc.returncode, proc.stdout, proc.stderr
    else:
        pytest.fail(f"{where}: this test does not know how to run {argv[0]!r}; decide in BLOCKS and the docstring")
    assert code in (0, None), f"{where}: exit code {code}\n{err}"
    return Ran(line, argv, out, err)


@dataclass
class Shown:
    """One top-level statement of a python block: what it evaluated to and what it printed."""

    line: int
    source: str
    value: object
    printed: str


def run_python(b: Block, namespace: dict) -> dict[str, Shown]:
    """Run a python block statement by statement in ``namespace``; check literal comments; return
    ``{statement source: Shown}``."""
    tree = ast.parse(b.code, filename="README.md")
    comments = comment_of(b)
    shown = {}
    for stmt in tree.body:
        source = ast.get_source_segment(b.code, stmt)
        line = b.line + stmt.end_lineno - 1
        ast.increment_lineno(stmt, b.line - 1)  # tracebacks point at README lines
        buf = io.StringIO()
        value = None
        with contextlib.redirect_stdout(buf):
            if isinstance(stmt, ast.Expr):
                value = eval(compile(ast.Expression(stmt.value), "README.md", "eval"), namespace)
            else:
                exec(compile(ast.Module([stmt], type_ignores=[]), "README.md", "exec"), namespace)
        shown[source] = Shown(line, source, value, buf.getvalue())
        try:
            expected = ast.literal_eval(comments.get(line, ""))
        except (ValueError, SyntaxError):
            continue  # a descriptive comment, checked by the test of that block if at all
        is_print = (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)
                    and isinstance(stmt.value.func, ast.Name) and stmt.value.func.id == "print")
        if is_print:
            assert buf.getvalue().strip() == str(expected), \
                f"README.md:{line}: {source} printed {buf.getvalue().strip()!r}; the README says {expected!r}"
        else:
            assert value == expected, f"README.md:{line}: {source} gave {value!r}; the README says {expected!r}"
    return shown


@pytest.fixture(autouse=True)
def _reset_quiet():
    yield
    progress.set_quiet(None)  # cli.main sets it; do not leak it into other test modules


@pytest.fixture
def offline(monkeypatch):
    """Refuse every connection that leaves the loopback, as on a machine without the data hosts."""
    local = ("127.0.0.1", "::1", "localhost")

    def _refuse(address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and host not in local:
            raise OSError(f"test_readme: network off, refused {address!r}")

    real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            _refuse(address)
        return real_connect(self, address)

    def getaddrinfo(host, *args, **kwargs):
        _refuse((host,))
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@dataclass
class RealHome:
    path: Path
    existed_before: bool  # whether the connectome store existed before the Datasets example ran
    shown: dict | None  # what the Datasets example showed (None if it raised)
    namespace: dict  # the example's variables
    error: BaseException | None


@pytest.fixture(scope="module")
def real_home(tmp_path_factory):
    """A fresh cache holding the real C. elegans stores. The README's Datasets example is what prepares the
    connectome (it says "prepared on first use"); its outcome is kept for test_datasets_example."""
    if not HAVE_CELEGANS:
        pytest.skip(CELEGANS_REASON)
    from neuroharness.loaders import cache

    home = tmp_path_factory.mktemp("readme_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEUROHARNESS_HOME", str(home))
        before = cache.store_path("celegans-connectome", "1.0").exists()
        shown, error, namespace = None, None, {}
        try:
            shown = run_python(block(DATASETS, "python"), namespace)
        except Exception as e:  # noqa: BLE001 - reported by test_datasets_example; the stores are needed anyway
            error = e
        nh.prepare_dataset("celegans-connectome")
        nh.prepare_dataset("celegans-funatlas")
        yield RealHome(home, before, shown, namespace, error)


@pytest.fixture
def in_real_home(real_home, tmp_path, monkeypatch) -> Path:
    """A fresh working folder, with the real-data cache as NEUROHARNESS_HOME."""
    monkeypatch.setenv("NEUROHARNESS_HOME", str(real_home.path))
    return tmp_path


# -- the blocks as a whole ------------------------------------------------------------
def test_every_block_is_decided():
    keys = [(b.section, b.lang) for b in parse_blocks(readme_text())]
    undecided = [k for k in keys if k not in BLOCKS]
    assert not undecided, f"README blocks with no decision in tests/test_readme.py BLOCKS: {undecided}"
    twice = sorted({k for k in keys if keys.count(k) > 1})
    assert not twice, f"several README blocks share a (heading, language), so a test would see only one: {twice}"
    gone = [k for k in BLOCKS if k not in keys]
    assert not gone, f"BLOCKS entries whose README block is gone: {gone}"


def test_internal_links_resolve():
    text = readme_text()
    headings = [line.lstrip("#").strip() for line in re.sub(r"^```.*?^```", "", text, flags=re.M | re.S).splitlines()
                if line.startswith("#")]
    slugs = {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}
    links = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert links, "the README links to none of its sections"
    assert links <= slugs, f"README links to missing sections: {sorted(links - slugs)}"


def test_quickstart_block_is_left_to_ci():
    b = block(QUICKSTART, "bash")
    assert b.line == min(x.line for x in parse_blocks(readme_text()) if x.lang == "bash"), \
        ".ci/run reads the first ```bash block; the Quickstart block must stay first"
    lines = [ln for ln in b.code.splitlines() if ln.strip()]
    assert len(lines) == 2 and "-m pytest" in lines[1], "the Quickstart's second line must stay the test command"


# -- What the first command prints -----------------------------------------------------
def test_official_leaderboard_is_what_the_readme_prints(tmp_path):
    printed = run_command(0, ["neuroharness", "leaderboard", TASK], tmp_path).out
    readme = section_text(OUTPUT)
    title = next(ln for ln in printed.splitlines() if ln.startswith("Task "))
    assert title in readme.splitlines(), f"README's title line differs from the command's:\n{title}"
    table = [ln for ln in printed.splitlines() if ln.startswith("|")]
    readme_table = [ln for ln in readme.splitlines() if ln.startswith("|")]
    assert readme_table == table, \
        f"README's leaderboard differs from `neuroharness leaderboard {TASK}`, which prints:\n" + "\n".join(table)
    note = next(ln for ln in printed.splitlines() if ln.startswith("gap vs next:"))
    flat = " ".join(readme.split())
    assert " ".join(note.split()) in flat, f"README's note under the table differs from:\n{note}"


# -- What next ----------------------------------------------------------------------
@needs_celegans
def test_what_next(in_real_home):
    cwd = in_real_home
    # stands in for the Quickstart's results folder
    run_command(0, ["neuroharness", "run", TASK, "--model", "chance", "connectome-direct", "--seeds", "0",
                    "--out", "results"], cwd)
    ran = [run_command(line, argv, cwd) for line, argv in commands(block(WHAT_NEXT, "bash"))]
    listed = [ln.split()[0] for ln in ran[0].out.splitlines() if ln.strip()]
    assert ran[0].argv[1:] == ["tasks", "list"] and sorted(listed) == sorted(nh.list_tasks())
    assert len(listed) == 7, "the README says 'the seven tasks'"
    assert ran[1].argv[1:3] == ["leaderboard", "--all"]
    index = (cwd / "site" / "index.html").read_text()
    assert f"{TASK}.html" in index
    page = (cwd / "site" / f"{TASK}.html").read_text()
    assert "gnn-link" in page  # the official records
    for path in (cwd / "results").glob("*.json"):  # and ours, each with its provenance
        assert json.loads(path.read_text())["record_digest"] in page, f"the site shows no provenance of {path.name}"


# -- Try it offline -------------------------------------------------------------------
def _is_wheel_command(argv: list[str]) -> bool:
    return any(a.endswith(".whl") for a in argv)


def test_offline_generators_and_prepare(tmp_path, monkeypatch, offline):
    home, cwd = tmp_path / "home", tmp_path / "work"
    cwd.mkdir()
    monkeypatch.setenv("NEUROHARNESS_HOME", str(home))
    b = block(OFFLINE, "bash")
    ran = [run_command(line, argv, cwd) for line, argv in commands(b) if not _is_wheel_command(argv)]
    assert [r.argv[0] for r in ran].count("python") == 3, "one generator per source without a wheel"
    activity = nh.open_dataset("celegans-activity")
    assert f"{activity.sizes['worm']} worms" == comment_on(b, "make_celegans_activity_fixture")
    fisbe = nh.open_dataset("fisbe")
    assert fisbe["sample"].size == 6  # --per-split 1: one per subset (2) and split (3)
    graph = comment_on(b, "make_vesselgraph_fixture")
    vessels = nh.open_dataset("vesselgraph")
    assert graph.startswith("graph ") and graph.split()[1] in vessels.children
    run = ran[-1]
    assert run.argv[1] == "run"
    seeds = json.loads(run_command(0, ["neuroharness", "tasks", "info", run.argv[2], "--json"], cwd).out)["seeds"]
    option = run.argv[run.argv.index("--option") + 1]
    records = sorted(p.name for p in (cwd / "results").glob("*.json"))
    assert records == [f"{run.argv[2]}__common-neighbours__seed{s}__{option}.json" for s in seeds]
    assert not list(home.rglob("*.part")) and not list(home.rglob("*tmp*"))


def test_offline_guard_refuses_the_network(offline):
    for host in ("pypi.org", "93.184.216.34"):
        with pytest.raises(OSError, match="network off"):
            socket.create_connection((host, 443), timeout=1)


@needs_celegans
def test_offline_wheels(real_home, tmp_path, monkeypatch, offline):
    from neuroharness.loaders.celegans.connectome import CECT
    from neuroharness.loaders.celegans.funatlas import WORMNEUROATLAS

    home, cwd = tmp_path / "home", tmp_path / "work"
    cwd.mkdir()
    wheel_commands = [(line, argv) for line, argv in commands(block(OFFLINE, "bash")) if _is_wheel_command(argv)]
    assert len(wheel_commands) == 2
    for src in (CECT, WORMNEUROATLAS):  # the pinned data members, taken from the installed copy
        site = Path(list(importlib.util.find_spec(src.package).submodule_search_locations)[0]).parent
        with zipfile.ZipFile(cwd / src.wheel_name, "w", zipfile.ZIP_STORED) as zf:
            for member in src.files:
                zf.write(site / member, member)
    monkeypatch.setenv("NEUROHARNESS_HOME", str(home))
    for line, argv in wheel_commands:
        assert (cwd / argv[argv.index("--source") + 1]).is_file(), \
            f"README.md:{line}: names a wheel that is not {CECT.wheel_name} or {WORMNEUROATLAS.wheel_name}"
        run_command(line, argv, cwd)
    got = {}
    for name in ("celegans-connectome", "celegans-funatlas"):
        ds = nh.open_dataset(name)
        assert ds.attrs["source"].startswith("local wheel "), ds.attrs["source"]
        got[name] = ds.attrs["content_sha256"]
        ds.close()
    monkeypatch.setenv("NEUROHARNESS_HOME", str(real_home.path))
    for name, sha in got.items():
        ds = nh.open_dataset(name)
        assert ds.attrs["content_sha256"] == sha, f"{name} from the wheel differs from the installed copy's store"
        ds.close()


def _env_variables_read_by_loaders() -> dict[str, str]:
    """Environment variable names that appear as whole string constants in loaders/ code -> the file."""
    found = {}
    for path in sorted((ROOT / "loaders").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and re.fullmatch(r"NEUROHARNESS_[A-Z0-9_]+|HF_ENDPOINT", node.value):
                found.setdefault(node.value, str(path.relative_to(ROOT)))
    return found


def test_offline_lists_every_variable_the_loaders_read():
    table = [ln for ln in section_text(OFFLINE).splitlines() if ln.startswith("| `")]
    listed = {re.match(r"\| `([A-Z0-9_]+)`", ln).group(1) for ln in table}
    read = _env_variables_read_by_loaders()
    assert listed == set(read), (f"README 'Try it offline' lists {sorted(listed - set(read))} that loaders/ does not "
                                 f"read, and misses {sorted(set(read) - listed)} ({read})")


# -- Datasets -----------------------------------------------------------------------
@needs_celegans
def test_datasets_example(real_home):
    if real_home.error is not None:
        raise real_home.error
    import dask.array

    assert not real_home.existed_before, "the example must run in an empty cache to show 'prepared on first use'"
    printed = [s.printed.strip() for s in real_home.shown.values() if s.printed]
    assert printed == ["2.0"]  # the comment says so, and run_python compared the two
    assert isinstance(real_home.namespace["ds"].chemical.data, dask.array.Array), "the README says lazy, dask-backed"


# -- Submitting predictions ---------------------------------------------------------
def _predictions_from_template(cwd: Path, name: str) -> None:
    pairs = pd.read_parquet(cwd / "pairs.parquet")
    rng = np.random.default_rng(0)
    pairs.assign(score=rng.random(len(pairs)), amplitude=rng.normal(size=len(pairs))).to_parquet(cwd / name)


@needs_celegans
def test_submitting_predictions(in_real_home):
    cwd = in_real_home
    b = block(SUBMIT, "bash")
    ran = []
    for line, argv in commands(b):
        for a in argv:
            if a.endswith(".parquet") and argv[1] == "evaluate" and not (cwd / a).exists():
                _predictions_from_template(cwd, a)  # what the user's model writes
        ran.append(run_command(line, argv, cwd))

    # the counts the README states (Task section and the chance-level paragraph)
    text = readme_text()
    assert "train 15,784 pairs (771 significant), val 1,732 (55) and test 6,385 (324)" in " ".join(text.split())
    assert "324 / 6385 = 0.0507" in text
    train, val, pairs = (pd.read_parquet(cwd / f) for f in ("train.parquet", "val.parquet", "pairs.parquet"))
    for t, n, sig in ((train, 15784, 771), (val, 1732, 55)):
        assert list(t.columns) == ["responding", "stimulated", "significant", "amplitude"] and len(t) == n
        assert int(t["significant"].sum()) == sig
    assert list(pairs.columns) == ["responding", "stimulated"] and len(pairs) == 6385
    assert "the 6,385 test pairs" in comment_of(b)[ran[2].line]

    card = json.loads(run_command(0, ["neuroharness", "tasks", "info", TASK, "--json"], cwd).out)
    metrics = json.loads(ran[3].out)
    assert {m["name"] for m in card["metrics"]} | {"main_score"} <= set(metrics)
    assert metrics["main_score"] == metrics[card["main_metric"]]
    assert (metrics["n_pairs"], metrics["n_significant"]) == (6385, 324)
    assert round(metrics["chance_average_precision"], 4) == 0.0507

    evaluate = ran[4]
    out = cwd / evaluate.argv[evaluate.argv.index("--out") + 1]
    record = json.loads((out / f"{TASK}__my-logreg__seed0.json").read_text())
    assert record["model"]["name"] == "my-logreg" and record["model"]["n_parameters"] == 3
    assert record["model"]["description"] == "logistic regression on connectome weights"
    assert record["model"]["origin"]["kind"] == "submission" and record["seed"] == 0
    assert record["metrics"]["main_score"] == metrics["main_score"]
    board = ran[5].out
    assert re.search(r"^\| \d \| my-logreg \| results \|", board, re.M), board
    assert re.search(r"^\| \d \| gnn-link \| official \|", board, re.M), board


# -- commands that are checked, not run -------------------------------------------------
def _cli(argv: list[str], cwd: Path) -> str:
    return run_command(0, ["neuroharness", *argv], cwd).out


def _graph_names() -> set[str]:
    rows = [ln.split("\t") for ln in (ROOT / "loaders" / "vesselgraph" / "graphs.tsv").read_text().splitlines()
            if ln and not ln.startswith("#")]
    assert rows[0][0] == "graph"
    return {r[0] for r in rows[1:]}


def check_command(line: int, argv: list[str], cwd: Path) -> None:
    where = f"README.md:{line}: {shlex.join(argv)}"
    assert argv[0] == "neuroharness", f"{where}: not a neuroharness command"
    args = argv[1:]
    verb = args[:2] if args[0] in ("datasets", "tasks", "models") else args[:1]
    usage = _cli([*verb, "--help"], cwd)
    flags = set(re.findall(r"(?<![\w-])--[a-z][\w-]*", usage))
    used = {a.split("=", 1)[0] for a in args if a.startswith("--")}
    assert used <= flags, f"{where}: `neuroharness {' '.join(verb)} --help` lists no {sorted(used - flags)}"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            ns = build_parser().parse_args(args)
        except SystemExit:
            pytest.fail(f"{where}: does not parse:\n{err.getvalue()}")
    if verb[0] == "datasets":
        unknown = set(getattr(ns, "names", [])) - set(nh.list_datasets())
        assert not unknown, f"{where}: no dataset {sorted(unknown)}"
        assert set(getattr(ns, "only", None) or []) <= _graph_names(), \
            f"{where}: --only names a graph that loaders/vesselgraph/graphs.tsv lacks"
        return
    task = getattr(ns, "name", None) if verb[0] == "tasks" else getattr(ns, "task", None)
    if task is None:
        return
    assert task in nh.list_tasks(), f"{where}: no task {task!r}"
    models = getattr(ns, "model", None)
    if models and models != ["all"]:
        known = {m["model"] for m in json.loads(_cli(["models", "list", task, "--json"], cwd))}
        assert set(models) <= known, f"{where}: task {task} has no model {sorted(set(models) - known)}"
    options = json.loads(_cli(["tasks", "info", task, "--json"], cwd))["options"]
    for item in ns.option or []:
        key, _, value = item.partition("=")
        assert key in options, f"{where}: task {task} has no option {key!r}"
        if key == "graph":
            assert value in _graph_names(), f"{where}: graph {value!r} is not in loaders/vesselgraph/graphs.tsv"


@pytest.mark.parametrize("section", [FISBE, VESSELGRAPH, STORES_ANYWHERE])
def test_checked_commands(section, tmp_path):
    cmds = commands(block(section, "bash"))
    assert cmds
    for line, argv in cmds:
        while argv and re.fullmatch(r"[A-Z][A-Z0-9_]*=\S*", argv[0]):  # VAR=value before the command
            argv = argv[1:]
        if section == STORES_ANYWHERE and argv[0] == "aws":  # the upload step, not ours
            continue
        check_command(line, argv, tmp_path)


def test_check_command_can_fail(tmp_path):
    """The checker itself catches the rot it is there for."""
    for argv, message in ((["neuroharness", "run", TASK, "--modle", "chance"], "lists no"),
                          (["neuroharness", "run", TASK, "--model", "no-such-model"], "has no model"),
                          (["neuroharness", "leaderboard", "no-such-task"], "no task"),
                          (["neuroharness", "run", "vesselgraph-link-prediction", "--model", "all", "--option",
                            "graph=NoSuchBrain"], "is not in"),
                          (["neuroharness", "tasks", "template", TASK, "x.parquet", "--split", "dev"],
                           "does not parse")):
        with pytest.raises(pytest.fail.Exception if message == "does not parse" else AssertionError, match=message):
            check_command(0, argv, tmp_path)


def test_benchmark_command_collects():
    (line, argv), = commands(block(PERFORMANCE, "bash"))
    assert argv[:3] == [".venv/bin/python", "-m", "pytest"], \
        f"README.md:{line}: expected .venv/bin/python -m pytest ..."
    proc = subprocess.run([sys.executable, *argv[1:], "--collect-only", "-q", "-p", "no:cacheprovider"], cwd=ROOT,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, \
        f"README.md:{line}: pytest refuses {shlex.join(argv)}:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
    m = re.search(r"(\d+) tests? collected", proc.stdout)
    assert m and int(m.group(1)) > 0, proc.stdout[-2000:]


# -- Your own model -------------------------------------------------------------------
@needs_celegans
def test_training_view_example(in_real_home):
    from neuroharness.loaders.celegans import neuron_names

    ns: dict = {}
    shown = run_python(block(OWN_MODEL, "python"), ns)
    train = shown['view.table("train")'].value
    assert list(train.columns) == ["responding", "stimulated", "significant", "amplitude"]  # as its comment says
    assert list(ns["view"].table("val").columns) == list(train.columns)  # '(also "val")'
    chemical, gap = shown["view.inputs.weights()"].value  # "(chemical, gap) connectome, [responding, stimulated]"
    assert chemical.shape == gap.shape == (302, 302)
    names = neuron_names()
    # Cook 2019: AVAL -> VA8 has 7 chemical sections (tests/test_celegans_loaders.py); indexed [responding, stimulated]
    assert chemical[names.index("VA8"), names.index("AVAL")] == 7
    assert chemical[names.index("AVAL"), names.index("VA8")] == 0


def test_plugin_entry_point_example():
    b = block(OWN_MODEL, "toml")
    shown = tomllib.loads(b.code)["project"]["entry-points"]["neuroharness.models"]
    plugin_dir = ROOT / "examples" / "neuroharness-example-plugin"
    plugin = tomllib.loads((plugin_dir / "pyproject.toml").read_text())
    assert shown == plugin["project"]["entry-points"]["neuroharness.models"], \
        f"README.md:{b.line}: the entry point differs from {plugin_dir.relative_to(ROOT)}/pyproject.toml"
    for name, value in shown.items():
        task, _, model = name.partition(":")
        assert task in nh.list_tasks() and model
        module, _, attr = value.partition(":")
        base = plugin_dir.joinpath(*module.split("."))
        path = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
        tree = ast.parse(path.read_text())
        defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        defined |= {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
        assert attr in defined, f"{path.relative_to(ROOT)} defines no {attr}"


# -- Layout ------------------------------------------------------------------------------
def _strip_parentheses(text: str) -> str:
    while True:
        stripped = re.sub(r"\([^()]*\)", "", text)
        if stripped == text:
            return text
        text = stripped


def test_layout_names_existing_paths():
    b = block(LAYOUT, "")
    entries: list[tuple[Path, str]] = []  # (folder or file, the text describing it)
    top = None
    for line in b.code.splitlines():
        m = re.match(r"^( ?)( ?)(\S+)\s*(.*)$", line)
        if line.startswith("    ") or m is None:  # continuation of the entry above
            path, text = entries[-1]
            entries[-1] = (path, text + " " + line.strip())
            continue
        indent, name, rest = m.group(1) + m.group(2), m.group(3), m.group(4)
        if indent:  # a family folder inside the last top-level folder
            entries.append((top / name, rest))
        else:
            top = ROOT / name
            entries.append((top, rest))
    assert len(entries) >= 8
    missing = []
    for path, text in entries:
        if not path.exists():
            missing.append(str(path.relative_to(ROOT)))
        if not path.is_dir():
            continue
        for f in re.findall(r"(?<![\w/*<])(\w[\w/-]*\.(?:py|tsv|json|txt))\b", _strip_parentheses(text)):
            if not (path / f).exists():
                missing.append(str((path / f).relative_to(ROOT)))
    assert not missing, f"README.md:{b.line}: the Layout names paths that do not exist: {missing}"


# -- NSD ---------------------------------------------------------------------------------
def test_nsd_block_on_a_synthetic_subject(tmp_path, monkeypatch, offline):
    from neuroharness.leaderboards.records import read_records

    monkeypatch.setenv("NEUROHARNESS_HOME", str(tmp_path / "home"))
    cwd = tmp_path / "work"
    cwd.mkdir()
    b = block(NSD, "bash")
    ran = [run_command(line, argv, cwd) for line, argv in commands(b)]
    run = next(r for r in ran if r.argv[1] == "run")
    out = Path(cwd / run.argv[run.argv.index("--out") + 1])
    scores = {r["model"]["name"]: r["metrics"]["main_score"] for _, r in read_records(out)}
    text = README.read_text()
    stated = re.search(r"`pixels-pca-ridge` reaches mean r = ([0-9.]+) and\s+`mean-response`, the floor, ([0-9.]+)", text)
    assert stated, "the README states both scores after the NSD block"
    assert round(scores["pixels-pca-ridge"], 2) == float(stated.group(1))
    assert scores["mean-response"] == float(stated.group(2))
    assert "| 1 | pixels-pca-ridge |" in ran[-1].out


# -- EEG ---------------------------------------------------------------------------------
def test_eeg_block_on_the_synthetic_fixture(tmp_path, monkeypatch, offline):
    from neuroharness.leaderboards.records import read_records

    monkeypatch.setenv("NEUROHARNESS_HOME", str(tmp_path / "home"))
    cwd = tmp_path / "work"
    cwd.mkdir()
    ran = [run_command(line, argv, cwd) for line, argv in commands(block(EEG, "bash"))]
    run = next(r for r in ran if r.argv[1] == "run")
    out = Path(cwd / run.argv[run.argv.index("--out") + 1])
    scores = {r["model"]["name"]: r["metrics"]["main_score"] for _, r in read_records(out)}
    stated = re.search(r"`bandpower-logreg` reaches a balanced accuracy of ([0-9.]+) and\s+`majority`, the floor, "
                       r"([0-9]+(?:\.[0-9]+)?)", README.read_text())
    assert stated, "the README states both scores after the EEG block"
    assert round(scores["bandpower-logreg"], 2) == float(stated.group(1))
    assert scores["majority"] == float(stated.group(2))
    assert "| 1 | bandpower-logreg |" in ran[-1].out


# -- Hugging Face `datasets` ------------------------------------------------------------
@needs_celegans
def test_hf_export_blocks(in_real_home, monkeypatch):
    monkeypatch.chdir(in_real_home)
    for line, argv in commands(block(HF_EXPORT, "bash")):
        run_command(line, argv, in_real_home)
    shown = run_python(block(HF_EXPORT, "python"), {})  # checks every literal comment
    assert shown['sf["test"][0]'].value["significant"] is None  # test targets are never exported
