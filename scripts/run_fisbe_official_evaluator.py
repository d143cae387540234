"""Run the official FISBe evaluator on the hard cases and store its numbers as test expectations.

The official evaluator is ``evalinstseg`` (github.com/Kainmueller-Lab/evaluate-instance-segmentation,
commit cc34f4dd0994307b5144de40af8e83b5e22fbaab).  It pins ``scikit-image<0.25`` and must live in its
OWN virtual environment; nothing of it is imported here, it is only run as a subprocess.

Reproduce (from the repository root)::

    # 1. the evaluator, in a separate venv (source at the commit above, e.g. a git checkout or archive)
    git clone https://github.com/Kainmueller-Lab/evaluate-instance-segmentation /tmp/evalinstseg
    git -C /tmp/evalinstseg checkout cc34f4dd0994307b5144de40af8e83b5e22fbaab
    python3.11 -m venv /tmp/evalvenv
    /tmp/evalvenv/bin/pip install /tmp/evalinstseg "scikit-image<0.25" "zarr<3" "numpy==2.2.6"
    # (the stored JSON lists the exact versions: evaluator.package_versions)

    # 2. cases + official runs + neuroharness's current numbers -> tests/data/fisbe_official_metrics.json
    .venv/bin/python scripts/run_fisbe_official_evaluator.py --evaluator-python /tmp/evalvenv/bin/python

What it does:

1. builds the cases of ``scripts/make_fisbe_metric_cases.py`` and writes them to ``WORK/cases``
   (GT ``gt/<case>.zarr`` key ``volumes/gt_instances``; prediction ``pred/<case>.hdf`` key
   ``volumes/pred_instances``);
2. runs the official CLI once per case and setting (working directory ``WORK``, which holds no
   ``sample_list_per_split.txt``; ``--split_file`` points to a file that does not exist, so the
   partly flag comes from ``--partly`` alone; ``--from_scratch`` so no cached toml is reused):

   * ``flylight``: ``evalinstseg --app flylight ...`` -- the official preset (cldice, greedy,
     remove_small_components=800, fm 0.1 / fs 0.05, eval_dim, C/S/FS/FM and subset metrics).
     NB: the preset overwrites ``--remove_small_components`` with 800, so it cannot be switched
     off together with ``--app``;
   * ``flylight_no_rm``: the same settings spelled out without ``--app`` and with
     ``--remove_small_components 0`` (no predicted instance removed);

   ``--partly`` is added where the case says so;
3. reads every per-sample toml, keeps it whole (``official.<setting>.toml``) and maps the metrics
   that correspond to neuroharness's onto common names (``official.<setting>.metrics``):

   ==================  =========================================  ==============================
   name                official toml key                          neuroharness
   ==================  =========================================  ==============================
   avF1                confusion_matrix.avFscore19 (= avFscore)   summarize()["avF1"]
   C                   general.avg_gt_skel_coverage               summarize()["C"]
   S                   general.avg_f1_cov_score                   summarize()["S"]
   FS / FM             general.FS / general.FM                    summarize()["FS"/"FM"]
   tp                  general.TP_05_rel                          summarize()["tp"]
   TP_05               general.TP_05                              evaluate_instances()["tp_05"]
   clDice_TP           general.avg_TP_05_cldice (0.0 if no TP)    summarize()["clDice_TP"] (NaN->null)
   clDice_TP_values    general.TP_05_cldice                       evaluate_instances()["cldice_tp"]
   coverage            general.gt_skel_coverage                   evaluate_instances()["coverage"]
   n_gt / n_pred       general."Num GT" / general."Num Pred"      evaluate_instances()["n_gt"/..]
   per_threshold[th]   confusion_matrix.th_X_Y.AP_TP/AP_FP/AP_FN  evaluate_instances() tp/fp/fn
                       and .fscore (th = 0.1 .. 0.9)              summarize()["F1"]
   ==================  =========================================  ==============================

4. runs neuroharness's CURRENT ``evaluate_instances`` + ``summarize`` on the same arrays
   (``remove_small=800`` for ``flylight``, ``None`` for ``flylight_no_rm``; ``partly`` as the case
   says) and prints where they differ (not stored: that goes stale as soon as the metric code changes).

Tests should compare against ``cases.<case>.official.<setting>.metrics`` and may check that the
case builder still produces the stored inputs (``cases.<case>.sha256``).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import importlib.util
import json
import math
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "tests" / "data" / "fisbe_official_metrics.json"
EVALUATOR_URL = "https://github.com/Kainmueller-Lab/evaluate-instance-segmentation"
EVALUATOR_COMMIT = "cc34f4dd0994307b5144de40af8e83b5e22fbaab"
THRESHOLDS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
FLYLIGHT_GENERAL = ["avg_gt_skel_coverage", "avg_f1_cov_score", "false_merge", "false_split",
                    "avg_gt_cov_dim", "avg_gt_cov_overlap"]
SETTINGS = {
    "flylight": {
        "description": "official CLI preset --app flylight: cldice, greedy, remove_small_components=800 "
                       "(predicted instances of <= 800 voxels removed), fm_thresh 0.1, fs_thresh 0.05, eval_dim",
        "args": ["--app", "flylight"],
        "neuroharness_remove_small": 800,
    },
    "flylight_no_rm": {
        "description": "the flylight preset's settings given explicitly without --app, with "
                       "--remove_small_components 0 (no predicted instance removed)",
        "args": ["--ndim", "3", "--localization_criterion", "cldice", "--assignment_strategy", "greedy",
                 "--remove_small_components", "0", "--fm_thresh", "0.1", "--fs_thresh", "0.05", "--eval_dim",
                 "--metric", "general.avg_f1_cov_score", "--add_general_metrics", *FLYLIGHT_GENERAL],
        "neuroharness_remove_small": None,
    },
}
TOL = 1e-6  # official values pass through float32 matrices


def _load_builder():
    spec = importlib.util.spec_from_file_location("make_fisbe_metric_cases", ROOT / "scripts" / "make_fisbe_metric_cases.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _sha(a: np.ndarray) -> str:
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _th_key(th: float) -> str:
    return "th_" + str(th).replace(".", "_")


def official_metrics(toml: dict) -> dict:
    g, cm = toml["general"], toml["confusion_matrix"]
    return {
        "avF1": cm["avFscore19"], "C": g["avg_gt_skel_coverage"], "S": g["avg_f1_cov_score"],
        "FS": g["FS"], "FM": g["FM"], "tp": g["TP_05_rel"], "TP_05": g["TP_05"],
        "clDice_TP": g["avg_TP_05_cldice"], "clDice_TP_values": list(g["TP_05_cldice"]),
        "coverage": list(g["gt_skel_coverage"]), "n_gt": g["Num GT"], "n_pred": g["Num Pred"],
        "per_threshold": {str(th): {"tp": cm[_th_key(th)]["AP_TP"], "fp": cm[_th_key(th)]["AP_FP"],
                                    "fn": cm[_th_key(th)]["AP_FN"], "f1": cm[_th_key(th)]["fscore"]}
                          for th in THRESHOLDS},
    }


def ours_metrics(case, remove_small) -> dict:
    from neuroharness.metrics.instance_segmentation import evaluate_instances, summarize

    t0 = time.perf_counter()
    r = evaluate_instances(case.gt, case.pred, partly=case.partly, remove_small=remove_small)
    s = summarize([r])
    ths = [round(float(t), 2) for t in r["thresholds"]]
    assert ths == THRESHOLDS, ths
    return {
        "avF1": s["avF1"], "C": s["C"], "S": s["S"], "FS": s["FS"], "FM": s["FM"], "tp": s["tp"],
        "TP_05": r["tp_05"], "clDice_TP": None if math.isnan(s["clDice_TP"]) else s["clDice_TP"], "clDice_TP_values": list(r["cldice_tp"]),
        "coverage": list(r["coverage"]), "n_gt": r["n_gt"], "n_pred": r["n_pred"],
        "per_threshold": {str(th): {"tp": int(r["tp"][i]), "fp": int(r["fp"][i]), "fn": int(r["fn"][i]),
                                    "f1": float(s["F1"][i])} for i, th in enumerate(THRESHOLDS)},
        "seconds": round(time.perf_counter() - t0, 3),
    }


def _close(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if a is None or b is None:
        return a is b
    return abs(float(a) - float(b)) <= TOL


def differences(off: dict, ours: dict) -> dict:
    """{metric: {"official": x, "neuroharness": y}} for every metric that differs (abs tol 1e-6;
    value lists compared in order for coverage, sorted for clDice_TP_values)."""
    out = {}
    for k in ("avF1", "C", "S", "FS", "FM", "tp", "TP_05", "clDice_TP", "n_gt", "n_pred"):
        if not _close(off[k], ours[k]):
            out[k] = {"official": off[k], "neuroharness": ours[k]}
    for k, key in (("coverage", None), ("clDice_TP_values", sorted)):
        a, b = off[k], ours[k]
        if key:
            a, b = key(a), key(b)
        if len(a) != len(b) or not all(_close(x, y) for x, y in zip(a, b)):
            out[k] = {"official": off[k], "neuroharness": ours[k]}
    for th in off["per_threshold"]:
        for k in ("tp", "fp", "fn", "f1"):
            a, b = off["per_threshold"][th][k], ours["per_threshold"][th][k]
            if not _close(a, b):
                out[f"per_threshold.{th}.{k}"] = {"official": a, "neuroharness": b}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--evaluator-python", required=True, type=Path,
                   help="python of the venv where evalinstseg is installed (e.g. /tmp/evalvenv/bin/python)")
    p.add_argument("--evaluator-commit", default=EVALUATOR_COMMIT, help="commit the installed evalinstseg was built from")
    p.add_argument("--work", type=Path, default=Path("/tmp/fisbe_oracle"), help="scratch folder (cases, results)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--crop", type=Path, default=None, help="the real crop zarr (default: the builder's CROP)")
    p.add_argument("--only", nargs="*", default=None, help="only these case names")
    p.add_argument("--no-ours", action="store_true", help="skip neuroharness's numbers")
    a = p.parse_args(argv)

    builder = _load_builder()
    work = a.work.resolve()
    cases = builder.build_cases(a.crop)
    if a.only:
        cases = [c for c in cases if c.name in set(a.only)]
    index = builder.write_cases(cases, work / "cases")

    epy = str(a.evaluator_python)
    freeze = subprocess.run([epy, "-m", "pip", "freeze", "--all"], capture_output=True, text=True, check=True).stdout.splitlines()
    epy_version = subprocess.run([epy, "-c", "import sys; print(sys.version.split()[0])"], capture_output=True,
                                 text=True, check=True).stdout.strip()
    exe = Path(epy).parent / "evalinstseg"
    launcher = [str(exe)] if exe.exists() else [epy, "-m", "evalinstseg.evaluate"]
    no_split = work / "no_split_file.txt"  # must not exist: partly comes from --partly only
    if no_split.exists():
        no_split.unlink()

    def shown(args):  # command line as documented: paths relative to WORK
        return " ".join(["evalinstseg", *[str(x).replace(str(work) + "/", "$WORK/") for x in args]])

    result_cases, n_diff = {}, 0
    for c in cases:
        info = index[c.name]
        entry = {k: v for k, v in info.items() if k not in ("gt_file", "pred_file")}
        entry["sha256"] = {"gt": _sha(c.gt), "pred": _sha(c.pred)}
        entry["files"] = {"gt": f"$WORK/cases/gt/{c.name}.zarr", "gt_key": builder.GT_KEY,
                          "pred": f"$WORK/cases/pred/{c.name}.hdf", "pred_key": builder.PRED_KEY}
        entry["official"], diffs = {}, {}
        for setting, cfg in SETTINGS.items():
            out_dir = work / "results" / setting
            args = ["--res_file", info["pred_file"], "--res_key", builder.PRED_KEY,
                    "--gt_file", info["gt_file"], "--gt_key", builder.GT_KEY,
                    "--out_dir", str(out_dir), "--split_file", str(no_split), "--from_scratch",
                    *cfg["args"], *(["--partly"] if c.partly else [])]
            t0 = time.perf_counter()
            proc = subprocess.run([*launcher, *args], cwd=work, capture_output=True, text=True)
            secs = time.perf_counter() - t0
            if proc.returncode != 0:
                raise RuntimeError(f"{c.name}/{setting}: evaluator failed\n{proc.stdout}\n{proc.stderr}")
            rm = "_rm800" if setting == "flylight" else ""
            toml_file = out_dir / f"{c.name}_{builder.PRED_KEY.replace('/', '_')}_cldice_greedy{rm}.toml"
            toml = tomllib.loads(toml_file.read_text())
            if f"Partly: {c.partly}" not in proc.stdout:
                raise RuntimeError(f"{c.name}/{setting}: evaluator did not run with partly={c.partly}: {proc.stdout}")
            off = official_metrics(toml)
            entry["official"][setting] = {
                "remove_small_components": 800 if setting == "flylight" else None,
                "partly": c.partly,
                "command": shown(args),
                "toml_file": str(toml_file).replace(str(work) + "/", "$WORK/"),
                "seconds": round(secs, 2),
                "metrics": off,
            }
            if not a.no_ours:
                try:
                    diffs[setting] = differences(off, ours_metrics(c, cfg["neuroharness_remove_small"]))
                except Exception as e:  # noqa: BLE001 - report and go on: the official numbers are what is stored
                    diffs[setting] = {"error": f"{type(e).__name__}: {e}"}
            d = diffs.get(setting, {})
            print(f"{c.name:<30} {setting:<15} S={off['S']:.4f} avF1={off['avF1']:.4f} C={off['C']:.4f} "
                  f"FS={off['FS']} FM={off['FM']} n_pred={off['n_pred']}  "
                  f"{'ours differs: ' + ', '.join(sorted(d)) if d else ''}", flush=True)
        result_cases[c.name] = entry
        n_diff += sum(1 for d in diffs.values() if d)

    doc = {
        "description": "Official FISBe evaluator (evalinstseg) outputs on hard cases, per case and setting; "
                       "test expectations are cases.<case>.official.<setting>.metrics.",
        "generated": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "generated_by": "scripts/run_fisbe_official_evaluator.py",
        "case_builder": "scripts/make_fisbe_metric_cases.py",
        "reproduce": [
            "git clone https://github.com/Kainmueller-Lab/evaluate-instance-segmentation /tmp/evalinstseg",
            f"git -C /tmp/evalinstseg checkout {a.evaluator_commit}",
            "python3.11 -m venv /tmp/evalvenv",
            '/tmp/evalvenv/bin/pip install /tmp/evalinstseg "scikit-image<0.25" "zarr<3" "numpy==2.2.6"',
            ".venv/bin/python scripts/run_fisbe_official_evaluator.py --evaluator-python /tmp/evalvenv/bin/python",
        ],
        "evaluator": {
            "url": EVALUATOR_URL, "commit": a.evaluator_commit, "python": epy_version,
            "package_versions": freeze,
            "installed_from": "pip install of the evaluator source at the commit above (a local path, hence "
                              "'evalinstseg @ file://...' in package_versions)",
        },
        "settings": {k: {"description": v["description"], "cli_args": " ".join(v["args"]),
                         "neuroharness_remove_small": v["neuroharness_remove_small"]} for k, v in SETTINGS.items()},
        "command_template": "cd $WORK && evalinstseg --res_file $WORK/cases/pred/<case>.hdf --res_key volumes/pred_instances "
                            "--gt_file $WORK/cases/gt/<case>.zarr --gt_key volumes/gt_instances --out_dir $WORK/results/<setting> "
                            "--split_file $WORK/no_split_file.txt --from_scratch <setting args> [--partly]",
        "metric_map": {
            "avF1": "confusion_matrix.avFscore19", "C": "general.avg_gt_skel_coverage", "S": "general.avg_f1_cov_score",
            "FS": "general.FS", "FM": "general.FM", "tp": "general.TP_05_rel", "TP_05": "general.TP_05",
            "clDice_TP": "general.avg_TP_05_cldice", "clDice_TP_values": "general.TP_05_cldice",
            "coverage": "general.gt_skel_coverage", "n_gt": "general.Num GT", "n_pred": "general.Num Pred",
            "per_threshold.<th>.tp/fp/fn/f1": "confusion_matrix.th_<th>.AP_TP/AP_FP/AP_FN/fscore",
        },
        "cases": result_cases,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")
    print(f"wrote {a.out}: {len(result_cases)} cases x {len(SETTINGS)} settings; {n_diff} (case, setting) differ from neuroharness")
    return 0


if __name__ == "__main__":
    sys.exit(main())
