"""The generated HTML report, opened in a real browser (Playwright driving Debian's Chromium).

A small but real experiment (generated corpus, B0 random, B1 heuristic and a PPO policy, nano learners,
toxicity + perplexity) is run once per session; its report must load every figure, carry numbers (with
intervals) in the results tables, and say under each figure what it shows and which way is better; at
1400 px it must not scroll sideways, and its first section must name the strategies on the Pareto front.
The browser tests skip with a reason where /usr/bin/chromium or the playwright package is missing
(CI installs chromium with apt); the HTML checks that need no browser always run.
"""

from __future__ import annotations

import re
import struct
from html.parser import HTMLParser
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--no-first-run"]
# pareto, toxicity/perplexity per strategy, training + policy reward curves, keep/drop by source and level
EXPECTED_FIGURES = {"fig-pareto", "fig-by_budget", "fig-curves", "fig-keepdrop"}

_NUM = r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:e[+-]?\d+)?"
NUMBER = re.compile(rf"^{_NUM}$")
INTERVAL = re.compile(rf"^({_NUM})\s*\[({_NUM}),\s*({_NUM})\]$")


def _num(s: str) -> float:
    return float(s.replace(",", ""))


@pytest.fixture(scope="session")
def report_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """RUNS of the smallest real experiment (about 15 s on one core) and its report.html."""
    import torch

    from dynacure.experiments.demo import smoke_config
    from dynacure.experiments.runner import run_experiment
    from dynacure.report.html import build_report

    torch.set_num_threads(1)
    runs = tmp_path_factory.mktemp("runs")
    run_experiment(smoke_config(strategies=("random", "heuristic", "ppo")), runs, workers=1)
    return build_report(runs, runs / "report.html")


@pytest.fixture(scope="session")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip: playwright)")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found (Debian/Ubuntu: apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture()
def page(browser, report_html: Path):
    pg = browser.new_page(viewport={"width": 1200, "height": 900})
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.goto(report_html.resolve().as_uri())
    pg.wait_for_load_state("load")
    pg.errors = errors  # type: ignore[attr-defined]
    yield pg
    pg.close()


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk (raises on anything that is not a PNG)."""
    head = path.read_bytes()[:24]
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise ValueError(f"{path} is not a PNG file")
    return struct.unpack(">II", head[16:24])


def screenshot_report(html: Path, png: Path, width: int = 1200) -> Path:
    """Full-page screenshot of a report with the same browser set-up (also handy by hand:
    ``python -c "from tests.report.test_report_browser import screenshot_report; ..."``)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        pg = b.new_page(viewport={"width": width, "height": 900})
        pg.goto(Path(html).resolve().as_uri())
        pg.wait_for_load_state("load")
        pg.screenshot(path=str(png), full_page=True)
        b.close()
    return png


# ---- in the browser --------------------------------------------------------------------------------


def test_every_figure_loads(page) -> None:
    imgs = page.eval_on_selector_all(
        "img", "els => els.map(e => ({src: e.currentSrc.slice(0, 22), ok: e.complete, "
               "w: e.naturalWidth, h: e.naturalHeight, fig: e.closest('figure') && e.closest('figure').id}))")
    assert len(imgs) >= len(EXPECTED_FIGURES)
    for im in imgs:
        assert im["ok"] and im["w"] > 100 and im["h"] > 100, f"figure {im['fig']} did not load: {im}"
        assert im["src"].startswith("data:image/png"), "figures must be embedded, not linked"
    figs = set(page.eval_on_selector_all("figure", "els => els.map(e => e.id)"))
    assert figs >= EXPECTED_FIGURES, f"missing figures: {EXPECTED_FIGURES - figs}"
    assert page.errors == []


def test_results_table_holds_numbers(page) -> None:
    headline = page.eval_on_selector_all("table#results tbody tr", "trs => trs.length")
    assert headline == 3  # one per strategy at the one budget
    header = page.eval_on_selector_all("table#results thead th", "ths => ths.map(t => t.innerText)")
    # the headline toxicity metric is the first one that is not equal for every strategy (issue 28 item 11)
    assert any("toxicity" in h for h in header) and any("ppl" in h for h in header)
    # the headline table, then one table per suite: every cell a number or an interval
    rows = page.eval_on_selector_all(
        "table.results tbody tr",
        "trs => trs.map(tr => Array.from(tr.cells).map(td => ({text: td.innerText.trim(), "
        "label: td.classList.contains('text')})))")
    suite_tables = page.eval_on_selector_all("table.results", "ts => ts.map(t => t.id)")
    assert "results-toxicity-1" in suite_tables and "results-perplexity-1" in suite_tables
    strategies = set()
    intervals = 0
    for row in rows:
        strategies.add(row[0]["text"])
        for cell in row:
            if cell["label"]:
                continue
            t = cell["text"]
            m = INTERVAL.match(t)
            if m:
                v, lo, hi = (_num(g) for g in m.groups())
                assert lo <= v <= hi, f"interval does not contain its estimate: {t!r}"
                intervals += 1
            else:
                assert NUMBER.match(t), f"results cell is neither a number nor an interval: {t!r}"
    assert strategies == {"random", "heuristic", "ppo"}
    # two toxicity and two perplexity metrics per strategy, each with its interval
    assert intervals >= 3 * 4


def test_captions_say_what_and_which_way(page) -> None:
    caps = page.eval_on_selector_all("figure", "els => els.map(e => ({id: e.id, "
                                     "cap: e.querySelector('figcaption').innerText}))")
    assert len(caps) >= len(EXPECTED_FIGURES)
    for c in caps:
        assert len(c["cap"]) > 120, f"{c['id']}: caption too short to explain the figure: {c['cap']!r}"
        assert re.search(r"(lower|higher|lower-left|fewer|more)[^.]*better|better[^.]*(lower|higher)",
                         c["cap"], re.I), f"{c['id']}: caption does not say which way is better"


def test_no_horizontal_scroll_at_1400_px(browser, report_html: Path) -> None:
    pg = browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        pg.goto(report_html.resolve().as_uri())
        pg.wait_for_load_state("load")
        pg.evaluate("() => document.querySelectorAll('details').forEach(d => { d.open = true; })")
        assert pg.eval_on_selector_all("details[open]", "ds => ds.length") >= 1  # the paired tables by suite
        widths = pg.evaluate("() => ({scroll: document.documentElement.scrollWidth, "
                             "client: document.documentElement.clientWidth})")
        assert widths["scroll"] <= widths["client"], f"the page scrolls sideways at 1400 px: {widths}"
        # and no table is cut off or squeezed out of the page's text column
        over = pg.eval_on_selector_all(
            "table", "ts => ts.filter(t => t.getBoundingClientRect().right > document.documentElement"
                     ".clientWidth || t.scrollWidth > t.clientWidth + 1).map(t => t.id || t.className)")
        assert over == []
    finally:
        pg.close()


def test_first_section_names_the_pareto_strategies(page, report_html: Path) -> None:
    from dynacure.report.data import (
        SAFETY_METRICS,
        UTILITY_METRICS,
        aggregate,
        load_run,
        pareto_mask,
        pick_metric,
    )

    data = load_run(report_html.parent)
    s_key, u_key = pick_metric(data.results, SAFETY_METRICS), pick_metric(data.results, UTILITY_METRICS)
    a = aggregate(data.results, *s_key, by=("strategy",)).set_index("strategy")
    b = aggregate(data.results, *u_key, by=("strategy",)).set_index("strategy")
    strategies = sorted(a.index)
    front = pareto_mask(a.loc[strategies, "value"].to_numpy(), b.loc[strategies, "value"].to_numpy())
    on = {s for s, f in zip(strategies, front, strict=True) if f}
    assert on
    first = page.eval_on_selector("section", "s => ({id: s.id, h: s.querySelector('h2').innerText, "
                                             "pareto: s.querySelector('p.pareto').innerText})")
    assert first["id"] == "who-wins" and first["h"] == "Who wins"
    # the front is named before the sentence on the dominated points, which names their dominators
    front_part = first["pareto"].split(":", 1)[1].split(". The other", 1)[0]
    named = set(re.findall(r"(\w+) \(", front_part))
    assert named == on, f"Pareto sentence {first['pareto']!r} names {named}, the data says {on}"
    assert page.errors == []


def test_screenshot(page, tmp_path: Path) -> None:
    png = tmp_path / "report.png"
    page.screenshot(path=str(png), full_page=True)
    w, h = png_size(png)
    assert w >= 1000 and h > 2000  # a full page with several figures and tables
    assert png.stat().st_size > 50_000


# ---- without a browser -----------------------------------------------------------------------------


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.figures: list[str] = []
        self.alts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "figure":
            self.figures.append(a.get("id") or "")
        if tag == "img":
            self.alts.append(a.get("alt") or "")


def test_report_is_self_contained(report_html: Path) -> None:
    text = report_html.read_text(encoding="utf-8")
    p = _Collect()
    p.feed(text)
    assert set(p.figures) >= EXPECTED_FIGURES
    assert all(p.alts), "every figure needs alt text"
    # nothing is fetched from elsewhere: the page must render offline, from a mail attachment
    assert not re.search(r"""(src|href)=["'](https?:|//)""", text)


def test_png_size_rejects_other_files(tmp_path: Path) -> None:
    bad = tmp_path / "x.png"
    bad.write_bytes(b"GIF89a" + b"\0" * 30)
    with pytest.raises(ValueError, match="not a PNG"):
        png_size(bad)

