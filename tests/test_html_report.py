"""The study's HTML page (``<store.root>/reports/<study>/index.html``).

A fast test of the page builder on a real SQLite store without a browser (escaping of a
hostile description, top-N rows with the CSV link, figures embedded); then the demo study
run through the CLI and its page opened in a real headless Chromium through Selenium: no
SEVERE console error, every image decoded, a click on a column header reorders the rows.
The browser test skips, with the reason, only when Chromium or its driver is missing
(``apt-get install -y --no-install-recommends chromium chromium-driver``).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, text

from conftest import QUIET, open_all, run_cli
from regulas.core.report import NOTE, Report, ReportContext, ReportOutput
from regulas.reports.figures import pyplot, save

HOSTILE = "<script>alert(1)</script> & \"quoted\""
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = "/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else shutil.which("chromedriver")


def _study(engine: Engine, *, failed: int = 1) -> int:
    config = f"study:\n  name: hostile\n  workload: demo\n  description: {json.dumps(HOSTILE)}\nseed: 7\n"
    now = time.time()
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO study (name, workload, config_yaml, config_hash, root_seed, package_versions, host, started_at, "
            "resumed_at, finished_at, runs, status) VALUES ('hostile', 'demo', :c, 'h', 7, :v, '<host>', :t0, :t0, :t1, 2, 'failed')"
        ), {"c": config, "v": json.dumps({"numpy": "2.0", "<pkg>": "1"}), "t0": now - 65, "t1": now})
        (study_id,) = conn.execute(text("SELECT id FROM study WHERE name = 'hostile'")).one()
        for i in range(5):
            status = "failed" if i < failed else "done"
            conn.execute(text(
                "INSERT INTO task (study_id, key, kind, block, seed, status, attempts, duration_s, error_type, error_message, traceback) "
                "VALUES (:s, :k, 'demo.ridge', :b, 1, :st, 1, 0.5, :et, :em, :tb)"
            ), {"s": study_id, "k": f"key{i:04d}", "b": json.dumps({"block": i}), "st": status,
                "et": "RuntimeError" if status == "failed" else None,
                "em": "<img src=x onerror=alert(2)>" if status == "failed" else None,
                "tb": "Traceback <here>" if status == "failed" else None})
    return int(study_id)


class _Table(Report):
    """A big table with a caveat <b>not bold</b>."""

    name = "table"

    def write(self, ctx: ReportContext, inputs: Mapping[str, pd.DataFrame | None]) -> ReportOutput:
        rng = np.random.default_rng(0)
        frame = pd.DataFrame({"event": [f"ev<{i}>" for i in range(1234)], "r2": rng.normal(size=1234),
                              "n": np.arange(1234), "flag": [i % 2 == 0 for i in range(1234)]})
        frame.loc[3, "r2"] = np.nan
        frame.attrs[NOTE] = "optimistic <selection>"
        return ReportOutput(frame=frame, text="a < b & c", title=f"title {HOSTILE}")


class _Figures(Report):
    name = "figures"

    def write(self, ctx: ReportContext, inputs: Mapping[str, pd.DataFrame | None]) -> ReportOutput:
        plt = pyplot()
        files = []
        for i in range(2):
            fig, ax = plt.subplots(figsize=(2, 2))
            ax.plot([0, 1], [i, 1 - i])
            files.append(save(fig, ctx.out_dir / f"fig {i}.png"))
        other = ctx.out_dir / "extra" / "data.csv"
        other.parent.mkdir(parents=True, exist_ok=True)
        other.write_text("a,b\n1,2\n")
        return ReportOutput(files=[*files, other])


def test_page_escapes_truncates_and_embeds(tmp_path: Path) -> None:
    from regulas.reports import run_reports
    from regulas.store.arrays import StudyArrays

    engine = open_all(tmp_path / "regulas.db")
    try:
        study_id = _study(engine)
        out = tmp_path / "reports" / "hostile"
        ctx = ReportContext(study="hostile", study_id=study_id, db=engine, db_path=tmp_path / "regulas.db",
                            arrays=StudyArrays(tmp_path / "arrays.zarr", "hostile"), out_dir=out)
        started = time.perf_counter()
        run = run_reports([_Table(), _Figures()], ctx)
        assert time.perf_counter() - started < 10
    finally:
        engine.dispose()
    assert run.page == out / "index.html"
    page = run.page.read_text(encoding="utf-8")

    # nothing of the study's or the reports' text reaches the page unescaped
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(2)&gt;" in page
    for raw in ("<host>", "<pkg>", "Traceback <here>", "optimistic <selection>", "a < b & c", "ev<0>", "<b>not bold</b>"):
        assert raw not in page
    assert page.count("<script>") == 1  # the page's own sorting script only
    assert "Traceback &lt;here&gt;" in page and "RuntimeError" in page
    assert re.search(r"<dt>runs</dt><dd>2</dd>", page) and "1 min 5 s" in page  # runs and elapsed
    assert "1 failed task(s)" in page

    # the table: the first 50 of 1,234 rows, NaN shown as such, the whole table in a CSV beside the page
    table = page.split('<table class="sortable">')[1].split("</table>")[0]
    assert table.count("<tr>") == 1 + 50
    assert "the first 50 of 1,234 rows" in page
    (csv_href,) = re.findall(r'full table: <a href="([^"]+)">', page)
    assert "/" not in csv_href  # relative, next to index.html
    full = pd.read_csv(out / csv_href)
    assert len(full) == 1234 and list(full.columns) == ["event", "r2", "n", "flag"]
    assert '<td class="n na" data-v="">NaN</td>' in table

    # every PNG embedded as a data URI (and decodes to the file written), other files linked relatively
    images = re.findall(r'<img src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 2
    assert base64.b64decode(images[0]) == (out / "fig 0.png").read_bytes()
    assert 'href="extra/data.csv"' in page and 'href="fig%200.png"' in page
    # nothing is fetched from anywhere: no src/href to a scheme other than data: or a relative file
    assert not re.search(r'(src|href)="(https?:)?//', page)


# ----------------------------------------------------------------------------- real browser

@pytest.fixture(scope="module")
def demo_page(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("html") / "out"
    proc = run_cli(["run", "configs/demo.yaml", f"store.root={root}", "demo.n_targets=200", "demo.block_size=50",
                    "demo.n_splits=3", "cluster.n_workers=2", *QUIET])
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return root / "reports" / "demo" / "index.html", proc.stdout


def test_cli_prints_the_page_last(demo_page: tuple[Path, str]) -> None:
    page, stdout = demo_page
    assert page.is_file()
    assert stdout.rstrip().splitlines()[-1] == f"report:   {page}"
    assert f"figure:   {page.parent / 'demo_performance.png'}" in stdout


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("HTML browser test: chromium and/or chromedriver not installed "
                    "(apt-get install -y --no-install-recommends chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed (pip install -e '.[test]')")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
                "--window-size=1280,1600", f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # the browser's own temporary files (shared memory with --disable-dev-shm-usage, scoped dirs) go under tmp_path
    service = Service(CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log"), env={**os.environ, "TMPDIR": str(tmp_path)})
    driver = webdriver.Chrome(service=service, options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_page_in_headless_chromium(demo_page: tuple[Path, str], browser: Any) -> None:
    from selenium.webdriver.common.by import By

    page, _ = demo_page
    browser.get(page.as_uri())
    assert "demo" in browser.title
    severe = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
    assert not severe, severe

    images = browser.find_elements(By.TAG_NAME, "img")
    assert images, "the demo's figure is not on the page"
    for img in images:
        assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img) > 0

    table = browser.find_element(By.CSS_SELECTOR, "table.sortable")
    headers = table.find_elements(By.CSS_SELECTOR, "thead th")
    names = [h.text for h in headers]

    def column(name: str) -> list[str]:
        i = names.index(name) + 1
        return [c.text for c in table.find_elements(By.CSS_SELECTOR, f"tbody tr td:nth-child({i})")]

    before = column("metric")
    assert before == ["mse", "r2"]
    headers[names.index("mean")].click()  # ascending by mean: r2 (~0.4) before mse (~1.7)
    after = column("metric")
    assert after == ["r2", "mse"], after
    assert headers[names.index("mean")].get_attribute("aria-sort") == "ascending"
    headers[names.index("mean")].click()
    assert column("metric") == ["mse", "r2"]
    assert headers[names.index("mean")].get_attribute("aria-sort") == "descending"
    assert not [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
