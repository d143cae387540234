"""Run the Algonauts 2023 devkit's own metric script on hard cases and store its per-vertex outputs.

The official per-vertex metric is ``code/02_baseline_encoding_model/03_test_encoding.py`` of the
devkit (github.com/gifale95/algonauts_2023, CC BY-NC 4.0). Nothing of it is imported or copied
here: the script is RUN, unchanged, as a subprocess (it needs numpy, scipy and tqdm), once per
subject, on arrays written in the folder layout it expects::

    PROJECT/challenge_data/subjXX/test_split/test_fmri/{lh,rh}_test_fmri.npy
    PROJECT/challenge_data/subjXX/test_split/noise_ceiling/{lh,rh}_noise_ceiling.npy
    PROJECT/synthetic_data/subjXX/{lh,rh}_test_synthetic_fmri.npy      (the "predictions")

and it writes ``PROJECT/encoding_accuracy/encoding_accuracy_subjXX.npy`` (a pickled dict made by
the devkit itself in this run; read back here only, never by the harness).

Reproduce (from the repository root)::

    .venv/bin/python scripts/run_algonauts_official_metric.py /work/.mirror/gifale95+algonauts_2023/repo

``DEVKIT`` is a checkout of the devkit or its bare git directory (then ``HEAD``'s script is
extracted with ``git show`` into a temporary folder and run from there, unchanged).

Cases (all synthetic, seeded; the inputs are stored in the JSON with the outputs):

- subject 1 (float64 responses, predictions and NC; 12 stimuli): positive and negative r, a
  constant prediction, a constant response, r = 1 with NC < 1 (score 333 capped at 100), r = -1,
  NC exactly 0 with r > 0 / r < 0 / undefined r, r² = 2.5e-15 with NC = 0 (score 25: the
  replacement value 1e-14 matters), r² just above and just below NC, NC = 1, values near 1e150
  and 1e-150;
- subject 2 (float32 responses and predictions, float32 NC with zeros; 9 stimuli): the devkit
  computes Pearson r in float32 here under SciPy 1.17 + NumPy 2 (``compare`` = "float32");
- subject 3: subject 2's values upcast to float64 (NC kept float32, as the harness's store holds
  it): the float64 definition, compared exactly;
- subject 4 (float32 responses, float64 predictions: SciPy promotes to float64; 7 stimuli);
- subject 5 (2 stimuli: r is +-1 or undefined).

Output: ``tests/data/nsd_official_metric.json`` with, per (subject, hemisphere), the inputs, the
devkit's ``r2``, ``noise_ceiling`` (after its 0 -> 1e-14), ``noise_normalized_encoding`` and
``idx_nc_zero`` (NaN as null), the exact commands run, the devkit commit and script sha256, and
the versions of Python, NumPy, SciPy and tqdm that ran it.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

SCRIPT = "code/02_baseline_encoding_model/03_test_encoding.py"
OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "nsd_official_metric.json"


# -- cases -----------------------------------------------------------------------------------------
def _with_r(y: np.ndarray, r: float, rng) -> np.ndarray:
    """A column whose Pearson r with ``y`` is ``r`` (up to rounding): r·ŷ + sqrt(1-r²)·ẑ, ẑ ⟂ ŷ."""
    yc = y - y.mean()
    yh = yc / np.linalg.norm(yc)
    z = rng.standard_normal(len(y))
    z -= z.mean()
    z -= (z @ yh) * yh
    zh = z / np.linalg.norm(z)
    return 3.0 * (r * yh + math.sqrt(max(0.0, 1 - r * r)) * zh) + 0.5


def _tiny_r(n: int, e: float, dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    """(response, prediction) with r = e / sqrt(1 + e²) computed without cancellation by any
    implementation: both columns have mean exactly 0 and one pair of nonzero products, so r² is
    known to float rounding even at 1e-15 (where r from generic data carries an absolute error of
    about 1e-16)."""
    y = np.zeros(n, dtype)
    x = np.zeros(n, dtype)
    y[:2] = (1, -1)
    x[:4] = (e, -e, 1, -1)
    return y, x


def case_subject1(rng) -> dict:
    """float64 everything, 12 stimuli; every hard per-vertex case in lh, random ones in rh."""
    n = 12
    cols_y, cols_p, nc = [], [], []

    def add(y, p, c):
        cols_y.append(np.asarray(y, np.float64))
        cols_p.append(np.asarray(p, np.float64))
        nc.append(c)

    y = lambda: rng.standard_normal(n)  # noqa: E731
    t = y(); add(t, _with_r(t, 0.6, rng), 0.5)                       # 0 ordinary
    t = y(); add(t, _with_r(t, -0.4, rng), 0.5)                      # 1 negative r -> 0
    t = y(); add(t, np.full(n, 0.25), 0.5)                           # 2 constant prediction: NaN
    add(np.full(n, -1.5), y(), 0.5)                                  # 3 constant response: NaN
    t = y(); add(t, 2 * t + 3, 0.3)                                  # 4 r = 1, 100/0.3 capped at 100
    t = y(); add(t, -t, 0.3)                                         # 5 r = -1 -> 0
    t = y(); add(t, _with_r(t, 0.5, rng), 0.0)                       # 6 NC = 0, r > 0: capped 100
    t = y(); add(t, _with_r(t, -0.5, rng), 0.0)                      # 7 NC = 0, r < 0: 0
    t = y(); add(t, np.full(n, 7.0), 0.0)                            # 8 NC = 0, constant: NaN
    add(*_tiny_r(n, 5e-8), 0.0)                                      # 9 NC = 0, r2 = 2.5e-15: score 25
    t = y(); add(t, _with_r(t, math.sqrt(0.36) * 1.0000001, rng), 0.36)  # 10 r2 just above NC: 100
    t = y(); add(t, _with_r(t, math.sqrt(0.36) * 0.9999, rng), 0.36)     # 11 r2 just below NC: < 100
    t = y(); add(t, _with_r(t, 0.7, rng), 1.0)                       # 12 NC = 1: 100 r2
    t = y(); add(t, 1e150 * _with_r(t, 0.3, rng), 0.2)               # 13 huge predictions
    t = 1e-150 * y(); add(t, _with_r(t, 0.8, rng), 0.9)              # 14 tiny responses
    t = y(); add(t, _with_r(t, 0.999999, rng), 0.999)                # 15 r close to 1
    lh = (np.stack(cols_y, 1), np.stack(cols_p, 1), np.asarray(nc, np.float64))
    v = 11
    ty = rng.standard_normal((n, v))
    tp = 0.5 * ty + rng.standard_normal((n, v))
    tnc = rng.uniform(0.0, 1.0, v)
    tnc[[2, 7]] = 0.0
    rh = (ty, tp, tnc)
    return {"lh": lh, "rh": rh, "compare": "exact", "n": n}


def case_subject2(rng) -> dict:
    """float32 responses, predictions and NC (zeros included), 9 stimuli."""
    n = 9
    out = {}
    for hemi, v in (("lh", 10), ("rh", 8)):
        ty = rng.standard_normal((n, v)).astype(np.float32)
        tp = (0.6 * ty + rng.standard_normal((n, v))).astype(np.float32)
        tp[:, 1] = np.float32(0.1)  # constant prediction
        ty[:, 2] = np.float32(-0.3)  # constant response
        tp[:, 3] = -ty[:, 3]
        tp[:, 4] = 2 * ty[:, 4] + 1
        ty[:, 6], tp[:, 6] = _tiny_r(n, 5e-8, np.float32)  # NC = 0 below: score 25 / float32(1e-14)
        nc = rng.uniform(0.05, 0.9, v).astype(np.float32)
        nc[[0, 5, 6]] = 0.0
        out[hemi] = (ty, tp, nc)
    return {**out, "compare": "float32", "n": n}


def case_subject3(s2: dict) -> dict:
    """Subject 2's values upcast to float64 (NC kept float32): the float64 definition."""
    return {h: (s2[h][0].astype(np.float64), s2[h][1].astype(np.float64), s2[h][2]) for h in ("lh", "rh")} | \
        {"compare": "exact", "n": s2["n"]}


def case_subject4(rng) -> dict:
    """float32 responses, float64 predictions (promoted to float64 by SciPy), float64 NC, 7 stimuli."""
    n = 7
    out = {}
    for hemi, v in (("lh", 6), ("rh", 5)):
        ty = rng.standard_normal((n, v)).astype(np.float32)
        tp = 0.8 * ty.astype(np.float64) + 0.5 * rng.standard_normal((n, v))
        nc = rng.uniform(0.0, 1.0, v)
        nc[1] = 0.0
        out[hemi] = (ty, tp, nc)
    return {**out, "compare": "exact", "n": n}


def case_subject5(rng) -> dict:
    """2 stimuli: r is +1, -1 or undefined."""
    ty = np.array([[0.0, 1.0, 2.0, 5.0], [1.0, -1.0, 2.0, 4.0]])
    tp = np.array([[1.0, 0.0, 3.0, 9.0], [2.0, 1.0, 4.0, 9.0]])
    return {"lh": (ty, tp, np.array([0.5, 0.5, 0.0, 0.2])),
            "rh": (ty[:, :3].copy(), -tp[:, :3], np.array([0.25, 0.0, 1.0])), "compare": "exact", "n": 2}


def build_cases(seed: int = 20230820) -> dict[int, dict]:
    rng = np.random.default_rng(seed)
    s2 = case_subject2(rng)
    return {1: case_subject1(rng), 2: s2, 3: case_subject3(s2), 4: case_subject4(rng), 5: case_subject5(rng)}


# -- running the devkit ------------------------------------------------------------------------------
def devkit_script(devkit: Path, work: Path) -> tuple[Path, dict]:
    """The devkit's script, as a file (extracted from a bare git dir if needed), and its provenance."""
    info: dict = {"argument": str(devkit)}
    direct = devkit / SCRIPT
    git = ["git", f"--git-dir={devkit / '.git'}" if (devkit / ".git").exists() else f"--git-dir={devkit}"]
    try:
        info["commit"] = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True,
                                        text=True).stdout.strip()
    except (subprocess.CalledProcessError, FileNotFoundError):
        info["commit"] = None
    if direct.is_file():
        path = direct
    else:
        if info["commit"] is None:
            sys.exit(f"{devkit}: neither a devkit checkout (no {SCRIPT}) nor a git directory")
        text = subprocess.run([*git, "show", f"HEAD:{SCRIPT}"], check=True, capture_output=True).stdout
        path = work / "devkit" / SCRIPT
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text)
        info["extracted_with"] = f"git --git-dir=DEVKIT show HEAD:{SCRIPT}"
    info["script"] = SCRIPT
    info["script_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    return path, info


def write_layout(project: Path, sub: int, case: dict) -> None:
    s = f"subj{sub:02d}"
    for hemi in ("lh", "rh"):
        fmri, pred, nc = case[hemi]
        for folder, name, a in (
                (project / "challenge_data" / s / "test_split" / "test_fmri", f"{hemi}_test_fmri.npy", fmri),
                (project / "challenge_data" / s / "test_split" / "noise_ceiling", f"{hemi}_noise_ceiling.npy", nc),
                (project / "synthetic_data" / s, f"{hemi}_test_synthetic_fmri.npy", pred)):
            folder.mkdir(parents=True, exist_ok=True)
            np.save(folder / name, a)


def run_devkit(python: str, script: Path, project: Path, sub: int) -> dict:
    cmd = [python, str(script), "--sub", str(sub), "--project_dir", str(project)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}  # scipy's ConstantInputWarning on the NaN cases
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    out = project / "encoding_accuracy" / f"encoding_accuracy_subj{sub:02d}.npy"
    # the devkit saves its results as a pickled dict; this file was written by the devkit just now
    return np.load(out, allow_pickle=True).item()


def _values(a) -> list:
    """Numbers as JSON (NaN -> null); float32 values keep their exact value as a float64 literal."""
    a = np.asarray(a)
    if a.dtype.kind in "iu":
        return a.astype(np.int64).tolist()
    return [None if math.isnan(x) else x for x in a.astype(np.float64).ravel().tolist()] if a.ndim == 1 else \
        [_values(row) for row in a]


def versions(python: str) -> dict:
    code = ("import json, sys, numpy, scipy, tqdm; print(json.dumps({'python': sys.version.split()[0], "
            "'numpy': numpy.__version__, 'scipy': scipy.__version__, 'tqdm': tqdm.__version__}))")
    out = json.loads(subprocess.run([python, "-c", code], check=True, capture_output=True, text=True).stdout)
    return {**out, "platform": platform.platform()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("devkit", type=Path, help="checkout of gifale95/algonauts_2023 or its (bare) git directory")
    ap.add_argument("--python", default=sys.executable,
                    help="interpreter with numpy, scipy and tqdm (default: this one)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    cases = build_cases()
    records = []
    with tempfile.TemporaryDirectory(prefix="algonauts-metric-") as tmp:
        work = Path(tmp)
        script, devkit = devkit_script(args.devkit.resolve(), work)
        project = work / "project"
        commands = []
        for sub, case in cases.items():
            write_layout(project, sub, case)
            res = run_devkit(args.python, script, project, sub)
            commands.append(f"python {'DEVKIT/' + SCRIPT if 'extracted_with' not in devkit else SCRIPT} "
                            f"--sub {sub} --project_dir PROJECT")
            for hemi in ("lh", "rh"):
                fmri, pred, nc = case[hemi]
                records.append({
                    "subject": sub, "hemisphere": hemi, "compare": case["compare"],
                    "dtype": {"fmri": str(fmri.dtype), "pred": str(pred.dtype), "noise_ceiling": str(nc.dtype)},
                    "fmri": _values(fmri), "pred": _values(pred), "noise_ceiling_in": _values(nc),
                    "official": {
                        "r2": _values(res[f"{hemi}_r2"]),
                        "noise_ceiling": _values(res[f"{hemi}_noise_ceiling"]),
                        "noise_normalized_encoding": _values(res[f"{hemi}_noise_normalized_encoding"]),
                        "idx_nc_zero": _values(np.asarray(res[f"{hemi}_idx_nc_zero"]).ravel()),
                        "dtypes": {k: str(np.asarray(res[f"{hemi}_{k}"]).dtype)
                                   for k in ("r2", "noise_ceiling", "noise_normalized_encoding")},
                    },
                })
    doc = {
        "description": ("Per-vertex outputs of the Algonauts 2023 devkit's 03_test_encoding.py, run unchanged on "
                        "synthetic hard cases by scripts/run_algonauts_official_metric.py (see its docstring). "
                        "compare='exact': the float64 definition (tests: rtol 1e-12, same NaN positions); "
                        "compare='float32': the devkit computed Pearson r in float32 (SciPy 1.17 with NumPy 2, see "
                        "versions, keeps two float32 inputs in float32), so only float32 agreement is expected."),
        "generated_by": "python scripts/run_algonauts_official_metric.py " + " ".join(
            a if not os.path.isabs(a) else str(Path(a)) for a in (argv if argv is not None else sys.argv[1:])),
        "devkit": devkit,
        "commands": commands,
        "layout": {"fmri": "PROJECT/challenge_data/subjXX/test_split/test_fmri/{lh,rh}_test_fmri.npy",
                   "noise_ceiling": "PROJECT/challenge_data/subjXX/test_split/noise_ceiling/{lh,rh}_noise_ceiling.npy",
                   "pred": "PROJECT/synthetic_data/subjXX/{lh,rh}_test_synthetic_fmri.npy",
                   "output": "PROJECT/encoding_accuracy/encoding_accuracy_subjXX.npy"},
        "versions": versions(args.python),
        "cases": records,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")
    print(f"wrote {args.out} ({len(records)} subject-hemisphere cases)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
