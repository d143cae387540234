"""The static leaderboard site (``neuroharness leaderboard --all --html DIR``): its HTML, and a real browser."""
from __future__ import annotations

import functools
import http.server
import re
import threading
from pathlib import Path

import pytest

from neuroharness.cli import main
from neuroharness.errors import UsageError
from neuroharness.leaderboards import official_dir, site, table
from neuroharness.leaderboards.records import read_records

TASK = "celegans-structure-function"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def official_records():
    paths = sorted(official_dir(TASK).glob("*.json"))
    return read_records(paths), paths


def own_record(model: str, seed: int, score: float, *, task: str = TASK, main_metric: str = "roc_auc",
               options: dict | None = None, origin: str = "plugin") -> dict:
    """A record of another comparable set than the official ones (other dataset checksum); not validated."""
    return {
        "schema_version": 2, "seed": seed, "split": "test", "split_sha256": "5" * 64,
        "task": {"name": task, "version": "1.0", "main_metric": main_metric, "higher_is_better": True,
                 "options": options or {}},
        "datasets": [{"name": "some-dataset", "version": "1.0", "content_sha256": "a" * 64}],
        "model": {"name": model, "description": "", "n_parameters": 7, "hyperparameters": {}, "fitted": {},
                  "origin": {"kind": origin}},
        "metrics": {main_metric: score, "main_score": score},
        "environment": {"git_commit": "c0ffee" * 6 + "abcd", "python": "3.11", "platform": "linux"},
        "record_digest": f"{model}-{seed}-digest", "created": f"2026-0{seed + 1}-02T00:00:00+00:00",
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The site of the official records plus own records of a second task (one with published reference rows)."""
    records, paths = official_records()
    own = [(Path(f"/x/{m}-{s}.json"), own_record(m, s, v, task="vesselgraph-link-prediction",
                                                  options={"graph": "BALBc_no1"}))
           for m, vals in {"alpha": [0.6, 0.7, 0.8], "beta": [0.9, 0.85, 0.95]}.items() for s, v in enumerate(vals)]
    out = tmp_path_factory.mktemp("site") / "site"
    site.write_site(out, records + own, official=paths)
    return out, records


def rows_of(page: str) -> list[str]:
    return re.findall(r'<tr class="entry"[^>]*data-model="([^"]+)"', page)


def test_index_lists_every_task_with_datasets_main_metric_and_best_entry(built):
    out, records = built
    index = (out / "index.html").read_text()
    best = table.build(records, task=TASK)
    main = best.attrs["main_metric"]
    assert f'href="{TASK}.html"' in index and 'href="vesselgraph-link-prediction.html"' in index
    assert "celegans-funatlas 1.0" in index and "celegans-connectome 1.0" in index
    assert f"<td>{main}</td>" in index
    assert f"{best.iloc[0]['model']}: {best.iloc[0][main + '_mean']:.4f} ± {best.iloc[0][main + '_std']:.4f}" in index
    assert "beta: 0.9000 ± 0.0500" in index  # the own records' best, by table.build's numbers


def test_task_page_holds_the_table_provenance_and_plot_of_table_build(built):
    out, records = built
    page = (out / f"{TASK}.html").read_text()
    tab = table.build(records, task=TASK)
    assert rows_of(page) == list(tab["model"])  # rank order, as table.build sorts
    for _, row in tab.iterrows():  # the numbers are table.build's, as printed
        assert f"{row['roc_auc_mean']:.4f} ± {row['roc_auc_std']:.4f}" in page
        assert f"{int(row['n_parameters']):,}" in page
    for _, r in records:  # every record's provenance is on the page
        for value in (r["record_digest"], r["split_sha256"], r["environment"]["git_commit"],
                      *[d["content_sha256"] for d in r["datasets"]]):
            assert value in page
    assert page.count('<section class="provenance"') == len(tab)
    assert ">builtin</td>" in page and "2026-" in page
    assert page.count("<svg") == 1 and page.count("<circle") == len(tab) + len(records)  # a mean per row, a dot per seed
    # no server and no network at view time: nothing is loaded from elsewhere
    assert not re.search(r'<(script|link|img|iframe)[^>]+(src|href)=', page)
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "<script>" in page and "published, not produced here" not in page  # celegans has no reference rows


def test_published_reference_rows_are_marked_and_kept_out_of_the_ranking(built):
    out, _ = built
    page = (out / "vesselgraph-link-prediction.html").read_text()
    from neuroharness.tasks.vesselgraph.cards import REFERENCE_ROWS

    assert rows_of(page) == ["beta", "alpha"]
    assert page.count('<tr class="published">') == len(REFERENCE_ROWS)
    assert "Published reference results (published, not produced here)" in page
    assert "GAV" in page and "98.38" in page
    assert "graph=BALBc_no1" in page and ">plugin</td>" in page


def test_site_is_written_atomically_and_only_over_a_site(built, tmp_path, monkeypatch):
    out, records = built
    records = records[:3]
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(UsageError, match="not a site written by neuroharness"):
        site.write_site(foreign, records)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    target = tmp_path / "site"
    site.write_site(target, records)
    before = (target / "index.html").read_text()

    def broken(entries):
        raise RuntimeError("disk full")

    monkeypatch.setattr(site, "_index", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        site.write_site(target, records)
    assert (target / "index.html").read_text() == before  # the old site stays as it was
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "site"]  # no temporary folder left
    monkeypatch.undo()
    site.write_site(target, records)  # a site is replaced by the next one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "site"]


def test_cli_all_html_and_usage_errors(tmp_path, capsys):
    out = tmp_path / "web"
    assert main(["leaderboard", "--all", "--html", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out / "index.html")
    assert (out / f"{TASK}.html").is_file()
    assert main(["leaderboard", TASK, "--html", str(tmp_path / "one")]) == 0
    assert (tmp_path / "one" / f"{TASK}.html").is_file()
    assert main(["leaderboard"]) == 2
    assert "give a TASK" in capsys.readouterr().err
    assert main(["leaderboard", "--all"]) == 2
    assert "--html DIR" in capsys.readouterr().err
    assert main(["leaderboard", TASK, "--all", "--html", str(out)]) == 2
    (tmp_path / "file").write_text("x")
    assert main(["leaderboard", "--all", "--html", str(tmp_path / "file")]) == 2
    assert "is a file" in capsys.readouterr().err


# -- a real browser -------------------------------------------------------------------------------
def _browser_skip_reason() -> str | None:
    if not CHROMIUM.exists():
        return (f"{CHROMIUM} not found: the browser test needs Debian's chromium package "
                "(apt-get install -y chromium; .ci/run installs it where apt-get is available)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -c constraints.txt -e '.[test]')"
    return None


@pytest.fixture
def served(built):
    out, records = built
    handler = functools.partial(_QuietHandler, directory=str(out))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", records
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_site_in_headless_chromium(served, tmp_path):
    reason = _browser_skip_reason()
    if reason:
        print(f"skipping the browser test: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    base, records = served
    tab = table.build(records, task=TASK)
    external = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("request", lambda r: None if r.url.startswith(base) else external.append(r.url))
            page.goto(f"{base}/index.html")
            page.click(f'a[href="{TASK}.html"]')
            page.wait_for_url(f"{base}/{TASK}.html")

            def models():
                return page.eval_on_selector_all("table.leaderboard tbody tr", "rs => rs.map(r => r.dataset.model)")

            assert models() == list(tab["model"])
            header = page.locator("table.leaderboard th", has_text="model")
            header.click()
            assert models() == sorted(tab["model"])
            assert header.get_attribute("aria-sort") == "ascending"
            header.click()
            assert models() == sorted(tab["model"], reverse=True)
            page.locator("table.leaderboard th", has_text="roc_auc (main)").click()  # numeric, ascending
            assert models() == list(tab.sort_values("roc_auc_mean")["model"])
            params = page.locator("table.leaderboard th", has_text="parameters")
            params.click()
            assert models() == list(tab.sort_values("n_parameters", kind="mergesort")["model"])

            assert not page.locator("section.provenance").first.is_visible()
            best = tab.iloc[0]["model"]
            page.locator(f'tr.entry[data-model="{best}"]').click()
            shown = page.locator("section.provenance:visible")
            assert shown.count() == 1
            text = shown.inner_text()
            for _, r in records:
                if r["model"]["name"] == best:
                    assert r["record_digest"] in text and r["split_sha256"] in text
                    assert r["environment"]["git_commit"] in text
            assert page.locator("svg.plot circle").count() > 0

            png = page.screenshot(path=str(tmp_path / "task.png"), full_page=True)
        finally:
            browser.close()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    assert (tmp_path / "task.png").stat().st_size == len(png)
    assert external == []  # nothing fetched from anywhere but the local server
