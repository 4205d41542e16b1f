"""Open generated reports in a real headless Chromium and check every chart rendered.

Needs Chromium and its WebDriver (``make test`` installs Debian's ``chromium`` and
``chromium-driver`` through ``scripts/ensure_chromium.sh``). Without them the test is skipped,
or fails when ``CI`` is set.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from tradeloop.testing.environment import unavailable

RunCli = Callable[..., Result]  # the ``run_cli`` and ``run_sma_cross_backtest`` fixtures


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium driven by Selenium, with the browser console log enabled."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        unavailable("selenium is not installed (pip install -e '.[dev]')")
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if binary is None or driver_path is None:
        unavailable(
            "chromium and chromedriver are needed (scripts/ensure_chromium.sh installs them)"
        )
    options = webdriver.ChromeOptions()
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
    ):
        options.add_argument(arg)
    options.binary_location = binary
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()


def rendered_charts(driver: Any, page: Path) -> list[dict[str, Any]]:
    """Load ``page`` and return, per chart div, its rendered state once all are drawn."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(page.resolve().as_uri())
    WebDriverWait(driver, 120).until(
        lambda d: d.execute_script(
            "return document.querySelectorAll('div.chart').length > 0 && "
            "document.querySelectorAll('div.chart').length === "
            "document.querySelectorAll('div.chart.js-plotly-plot').length"
        )
    )
    charts: list[dict[str, Any]] = driver.execute_script(
        """
        return Array.from(document.querySelectorAll('div.chart')).map(el => ({
          id: el.id,
          plotly: el.classList.contains('js-plotly-plot'),
          traces: (el.data || []).length,
          expected: parseInt(el.dataset.traces, 10),
          drawn: el.querySelectorAll('svg.main-svg, canvas').length,
          points: el.querySelectorAll('.trace, .point, g.hm image').length,
        }));
        """
    )
    plotly_divs = driver.execute_script(
        "return document.querySelectorAll('.js-plotly-plot').length"
    )
    assert plotly_divs == len(charts)
    return charts


def severe_console_errors(driver: Any) -> list[dict[str, Any]]:
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def test_report_renders_every_chart_in_chromium(
    browser: Any, run_sma_cross_backtest: RunCli, sample_1h: Path, tmp_path: Path
) -> None:
    # Arrange: a long/short run with stops and targets on 1h bars (58k bars: merged candles
    # plus a full-resolution window), then its report
    out = tmp_path / "run"
    result = run_sma_cross_backtest(
        sample_1h, "-t", "1h", "--fee", "0.001",
        "-p", "short=true", "-p", "stop_loss=0.03", "-p", "take_profit=0.06",
        "--close-at-end", "--out", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    browser.get_log("browser")  # drop anything logged before this page
    # Act
    charts = rendered_charts(browser, out / "report.html")
    errors = severe_console_errors(browser)
    shot = tmp_path / "report.png"
    browser.save_screenshot(str(shot))
    # Assert
    ids = [c["id"] for c in charts]
    assert ids == [
        "chart-equity",
        "chart-montecarlo",
        "chart-price-0",
        "chart-price-0-recent",
        "chart-monthly",
    ]
    for chart in charts:
        assert chart["plotly"], chart
        assert chart["drawn"] > 0, chart
        assert chart["traces"] == chart["expected"], chart
        assert chart["points"] > 0, chart
    by_id = {c["id"]: c for c in charts}
    assert by_id["chart-equity"]["traces"] == 4  # peak, equity, buy & hold, underwater
    # candles, the strategy's two SMAs, long and short entries, exits (signal, stop loss, take
    # profit, end), winning and losing entry->exit lines, SL and TP, volume
    assert by_id["chart-price-0"]["traces"] == 14
    # plotly.js travels gzip-compressed: the whole 58k-bar report stays small
    assert (out / "report.html").stat().st_size < 5_000_000  # 6.5 MB with plain plotly.js
    assert errors == []
    assert shot.stat().st_size > 10_000


def test_compare_overlay_renders_in_chromium(
    browser: Any, run_cli: RunCli, run_sma_cross_backtest: RunCli, sample_1h: Path, tmp_path: Path
) -> None:
    # Arrange: two runs and their overlay page
    for name, params in (("a", ["-p", "fast=10"]), ("b", ["-p", "fast=20", "-p", "slow=50"])):
        result = run_sma_cross_backtest(
            sample_1h, "-t", "4h", *params, "--out", str(tmp_path / name), "--no-report"
        )
        assert result.exit_code == 0, result.output
    page = tmp_path / "cmp.html"
    result = run_cli("compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(page))
    assert result.exit_code == 0, result.output
    browser.get_log("browser")
    # Act
    charts = rendered_charts(browser, page)
    errors = severe_console_errors(browser)
    browser.save_screenshot(str(tmp_path / "compare.png"))
    # Assert
    assert [(c["id"], c["traces"], c["expected"]) for c in charts] == [("chart-overlay", 4, 4)]
    assert charts[0]["drawn"] > 0
    assert errors == []
