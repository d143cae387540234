"""Packaging: light listing commands, compatible dependency ranges, exact constraints, one version."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

import neuroharness

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
TASK = "celegans-structure-function"
HEAVY = ("torch", "numba", "xarray", "zarr", "dask", "pandas", "torch_geometric")


def _run_cli(argv: list[str], *flags: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run ``cli.main(argv)`` in a fresh interpreter; return the process and the heavy modules it imported."""
    code = (
        "import json, sys\n"
        "from neuroharness.cli import main\n"
        "try:\n"
        f"    code = main({argv!r})\n"
        "except SystemExit as e:\n"
        "    code = e.code\n"
        f"print(json.dumps([code, sorted(m for m in {HEAVY!r} if m in sys.modules)]), file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, *flags, "-c", code], capture_output=True, text=True, timeout=120)
    code, heavy = json.loads(proc.stderr.strip().splitlines()[-1])
    assert code in (0, None), proc.stderr
    return proc, heavy


@pytest.mark.parametrize("argv", [["tasks", "list"], ["tasks", "info", TASK], ["tasks", "info", TASK, "--json"],
                                  ["datasets", "list"], ["--help"], ["run", "--help"]])
def test_listing_commands_import_nothing_heavy(argv):
    proc, heavy = _run_cli(argv)
    assert heavy == [], f"`neuroharness {' '.join(argv)}` imported {heavy}"
    assert proc.stdout.strip()


def test_listing_works_without_docstrings():
    """`python -OO` strips docstrings: no card text, help text or description may come from one."""
    for argv in (["tasks", "list"], ["tasks", "info", TASK], ["--help"]):
        proc, heavy = _run_cli(argv, "-OO")
        assert heavy == []
    assert TASK in _run_cli(["tasks", "list"], "-OO")[0].stdout
    assert "Predict signal propagation" in _run_cli(["tasks", "info", TASK], "-OO")[0].stdout
    assert "datasets, tasks, run, evaluate, leaderboard" in _run_cli(["--help"], "-OO")[0].stdout


def test_python_oo_console_entry():
    proc = subprocess.run([sys.executable, "-OO", "-m", "neuroharness.cli", "tasks", "list"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert TASK in proc.stdout


# -- dependencies ----------------------------------------------------------------------
def _requirements(section: str) -> list[Requirement]:
    if section == "runtime":
        return [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
    return [Requirement(r) for r in PYPROJECT["project"]["optional-dependencies"][section]]


def _constraints() -> dict[str, Version]:
    pins = {}
    for n, line in enumerate((ROOT / "constraints.txt").read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([0-9][^\s;]*)", line)
        assert m, f"constraints.txt line {n}: {line!r}, expected NAME==VERSION"
        name = canonicalize_name(m.group(1))
        assert name not in pins, f"constraints.txt line {n}: {name} pinned twice"
        pins[name] = Version(m.group(2))
    return pins


@pytest.mark.parametrize("section", ["runtime", "test"])
def test_dependencies_are_ranges_not_pins(section):
    for req in _requirements(section):
        ops = {s.operator for s in req.specifier}
        assert not ops & {"==", "==="}, f"pyproject {section} dependency {req}: use a compatible range; exact versions go to constraints.txt"
        assert any(op in (">=", "~=", ">") for op in ops), f"pyproject {section} dependency {req}: no lower bound"


@pytest.mark.parametrize("section", ["runtime", "test"])
def test_every_dependency_is_pinned_in_constraints_within_its_range(section):
    pins = _constraints()
    for req in _requirements(section):
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} ({section}) is not pinned in constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), \
            f"constraints.txt pins {req.name}=={pins[name]}, outside pyproject's range {req.specifier}"


def test_constraints_pin_torch_2_13_0():
    assert _constraints()["torch"] == Version("2.13.0")


def test_scikit_image_is_a_test_dependency_only():
    runtime = {canonicalize_name(r.name) for r in _requirements("runtime")}
    assert "scikit-image" not in runtime
    assert "scikit-image" in {canonicalize_name(r.name) for r in _requirements("test")}
    users = [str(p.relative_to(ROOT)) for d in ("neuroharness", "loaders", "tasks", "metrics", "leaderboards")
             for p in (ROOT / d).rglob("*.py") if re.search(r"^\s*(import|from)\s+skimage\b", p.read_text(), re.M)]
    assert users == [], f"runtime code imports skimage: {users}; move scikit-image back to the runtime dependencies"


def test_install_commands_use_the_constraints():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"^```bash\n(.*?)^```", readme, re.M | re.S).group(1)
    commands = [line for line in block.splitlines() if line.strip()]
    assert len(commands) == 2
    for cmd in commands:
        assert re.search(r"\.venv/bin/pip install -c constraints\.txt (\.|-e '\.\[test\]') ", cmd), cmd
    assert "-c constraints.txt" in (ROOT / ".ci" / "run").read_text()


# -- versions and packages ---------------------------------------------------------------
def test_version_strings_agree():
    assert PYPROJECT["project"]["version"] == neuroharness.__version__ == "0.2.0"
    proc = subprocess.run([sys.executable, "-m", "neuroharness.cli", "--version"], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == f"neuroharness {neuroharness.__version__}"


def test_every_package_folder_is_declared():
    """A wheel holds only the declared packages: a new family folder must be listed in pyproject.toml."""
    tool = PYPROJECT["tool"]["setuptools"]
    declared = dict(tool["package-dir"])
    assert set(tool["packages"]) == set(declared)
    for package, folder in declared.items():
        assert (ROOT / folder / "__init__.py").exists(), f"{package} -> {folder} has no __init__.py"
    roots = {folder: package for package, folder in declared.items() if "/" not in folder}
    for folder, package in roots.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            sub = ".".join((package, *rel.parts)) if rel.parts else package
            if "__pycache__" in rel.parts:
                continue
            assert sub in declared, f"{init.parent.relative_to(ROOT)} is a package but pyproject.toml does not declare {sub}"
