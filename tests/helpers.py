"""Helpers shared by test modules (tests/ is on sys.path under pytest's default import mode)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load_script(name: str):
    """Import ``scripts/<name>.py`` (scripts/ is not a package) and return the module."""
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def prepare_vesselgraph(graphs: dict, src: Path, home: Path, monkeypatch) -> None:
    """Write ``{name: (nodes, edges)}`` in the release CSV layout under ``src`` and prepare every graph
    into a fresh cache at ``home`` (``NEUROHARNESS_HOME`` set through ``monkeypatch``)."""
    from neuroharness.loaders import get_loader

    gen = load_script("make_vesselgraph_fixture")
    for name, (nodes, edges) in graphs.items():
        gen.write_graph(src, name, nodes, edges)
    monkeypatch.setenv("NEUROHARNESS_HOME", str(home))
    get_loader("vesselgraph").prepare(source=src)


def peak_rss(fn) -> dict:
    """Run ``fn()``; return the resident set before it and its high-water mark during it, in MB
    (``{}`` where /proc cannot reset the mark: not Linux)."""
    status, reset = Path("/proc/self/status"), Path("/proc/self/clear_refs")

    def field(name):
        return next(int(line.split()[1]) for line in status.read_text().splitlines() if line.startswith(name))

    try:
        before = field("VmRSS")
        reset.write_text("5")  # VmHWM := VmRSS
    except OSError:
        fn()
        return {}
    fn()
    return {"rss_before_mb": round(before / 1024, 1), "peak_rss_mb": round(field("VmHWM") / 1024, 1)}


def patch_zip(path, offset: int, fmt: str, value: int, local: int) -> None:
    """Overwrite one field of every member header of the zip at ``path``, in place: ``struct`` format
    ``fmt`` at byte ``offset`` of each central-directory entry and ``local`` of each local header (e.g.
    the general-purpose flags, to mark members encrypted, or the compression method)."""
    import struct

    blob = bytearray(path.read_bytes())
    for sig, at_ in ((b"PK\x01\x02", offset), (b"PK\x03\x04", local)):
        at = blob.find(sig)
        while at >= 0:
            blob[at + at_ : at + at_ + struct.calcsize(fmt)] = struct.pack(fmt, value)
            at = blob.find(sig, at + 4)
    path.write_bytes(bytes(blob))


def closed_port_url() -> str:
    """``http://127.0.0.1:PORT`` where nothing listens: connections are refused at once, as when offline."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def run_child(argv: list[str], env: dict, tmp) -> dict:
    """Run ``argv`` to completion in a fresh process (benchmarks): ``{"wall_s", "peak_rss_mb", "stdout"}``.

    Peak RSS is GNU ``/usr/bin/time -f %M`` of the child where installed, else the largest child of this
    process so far (``getrusage(RUSAGE_CHILDREN)``, KB on Linux). A failing child fails the caller."""
    import resource
    import subprocess
    import time
    from pathlib import Path

    gnu_time = Path("/usr/bin/time")
    report = Path(tmp) / "rss"
    prefix = [str(gnu_time), "-f", "%M", "-o", str(report)] if gnu_time.exists() else []
    t = time.perf_counter()
    out = subprocess.run(prefix + list(argv), env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    assert out.returncode == 0, out.stderr[-4000:]
    kb = int(report.read_text().split()[-1]) if prefix else resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"wall_s": wall, "peak_rss_mb": kb / 1024, "stdout": out.stdout}


def bench_dir(env: str, tmp_path_factory, name: str) -> Path:
    """Where a benchmark keeps its generated data: ``$env`` when set (kept between runs), else a fresh
    temp folder ``name``; created if missing."""
    import os

    root = Path(os.environ.get(env) or tmp_path_factory.mktemp(name))
    root.mkdir(parents=True, exist_ok=True)
    return root
