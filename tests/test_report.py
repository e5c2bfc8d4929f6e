"""The report page of `zoo compare` (``index.html``), read as HTML and opened in a
real headless browser: Debian's ``chromium`` driven by Selenium through its
``chromedriver`` (`make browser` installs both). Without them the browser test
skips, saying why, unless ZOO_REQUIRE_DATA is set (CI): then it fails.
"""

import contextlib
import csv
import io
import json
import os
import shutil
from html.parser import HTMLParser

import pytest
from PIL import Image

import zoo_cli as cli
from zoo import report

TINY = ["--dataset", "moons", "--set", "hidden_units=8", "--steps-per-epoch", "3",
        "--batch-size", "32"]


def zoo(*argv):
    return cli.main([str(a) for a in argv])


@pytest.fixture(scope="module")
def compared(tmp_path_factory, data_dir):
    """Three tiny runs on moons (RealNVP for 2 epochs and, from another seed, for 1;
    WGAN-GP, which has no likelihood, for 1) compared: (their folder, the compare
    folder, what the command printed)."""
    runs_dir = tmp_path_factory.mktemp("runs")
    couplings = ["--set", "num_couplings=2"]
    for name, model, extra in [("realnvp-a", "realnvp", ["--epochs", 2, *couplings]),
                               ("realnvp-b", "realnvp", ["--epochs", 1, "--seed", 1, *couplings]),
                               ("wgan", "wgan_gp", ["--epochs", 1, "--set", "num_hidden=1"])]:
        assert zoo("train", model, *TINY, *extra, "--out", runs_dir / name,
                   "--data-dir", data_dir) == 0
    out = runs_dir / "compare-moons"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert zoo("compare", "moons", "--runs-dir", runs_dir, "--num-samples", 200,
                   "--data-dir", data_dir) == 0
    return runs_dir, out, printed.getvalue()


class Page(HTMLParser):
    """The tags of a page with their attributes, and its text."""

    def __init__(self, text):
        super().__init__()
        self.tags, self.text = [], []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def read_table(out):
    with open(out / "table.csv", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_page_holds_the_table_pictures_and_curves(compared):
    runs_dir, out, printed = compared
    path = out / report.PAGE_FILE
    page = Page(path.read_text(encoding="utf-8"))
    # Self-contained: every picture is embedded, every link stays on the page.
    sources = [a["src"] for tag, a in page.tags if "src" in a]
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert all(a["href"].startswith(("#", "data:")) for _, a in page.tags if "href" in a)
    assert not [a for tag, a in page.tags if tag in ("script", "link") and "src" in a]
    # The table: one row per run, a header per column of table.csv's.
    rows = read_table(out)
    cells = [a for tag, a in page.tags if tag == "td"]
    headers = [a["data-key"] for tag, a in page.tags if tag == "th"]
    assert headers == list(rows[0]) and len(cells) == len(rows) * len(headers)
    # Each likelihood with its kind: exact for the flows, none for the GAN.
    kinds = {r["run"]: r["likelihood"] for r in rows}
    assert kinds == {"realnvp-a": "exact", "realnvp-b": "exact", "wgan": "none"}
    badges = [a["class"] for tag, a in page.tags if tag == "span"
              and a.get("class", "").startswith("kind ")]
    assert sorted(badges[:len(rows)]) == sorted(f"kind kind-{k}" for k in kinds.values())
    # The sheet, each run's samples, the flows' densities (a PNG of each beside it).
    alts = [a["alt"] for tag, a in page.tags if tag == "img"]
    assert alts.count("samples of every run") == 1
    assert sorted(a for a in alts if a.startswith("samples of ") and "every" not in a) == [
        "samples of realnvp-a", "samples of realnvp-b", "samples of wgan"]
    assert sorted(a for a in alts if a.startswith("density of ")) == [
        "density of realnvp-a", "density of realnvp-b"]
    for name in ("realnvp-a", "realnvp-b"):
        with Image.open(out / report.DENSITY_DIR / f"{name}.png") as image:
            assert image.width > 2 * image.height > 0
    # A curve per loss term of each run's history.json, a point per epoch.
    svgs = [a["aria-label"] for tag, a in page.tags if tag == "svg"]
    expected, epochs = [], 0
    for name in ("realnvp-a", "realnvp-b", "wgan"):
        with open(runs_dir / name / "history.json") as f:
            history = json.load(f)
        terms = [k for k in history[0] if k not in report.NOT_TERMS]
        expected += [f"{k} by epoch" for k in terms]
        epochs += len(terms) * len(history)
    assert svgs == expected and "critic_loss by epoch" in svgs
    assert sum(1 for tag, _ in page.tags if tag == "circle") == epochs
    # The command names the page among what it wrote.
    assert str(path) in printed.splitlines()


def test_curve_leaves_out_non_finite_values():
    terms = report.loss_terms([{"epoch": 1, "loss": 2.0, "seconds": 1.0, "learning_rate": 1e-3},
                               {"epoch": 2, "loss": float("nan")}, {"epoch": 3, "loss": 1.0}])
    assert terms == {"loss": [(1, 2.0), (3, 1.0)]}
    svg = report.curve_svg("loss", terms["loss"])
    assert svg.count("<circle") == 2 and "epoch 1" in svg
    assert "no finite value" in report.curve_svg("loss", [])


def chromium_driver():
    """A headless Chromium under Selenium (Debian's chromium and chromedriver),
    logging the console; skips, or fails under ZOO_REQUIRE_DATA, without them."""
    missing = [name for name in ("chromium", "chromedriver") if shutil.which(name) is None]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("selenium (pip install -e '.[test]')")
    if missing:
        why = (f"no browser to open the report page: {', '.join(missing)} missing "
               "(`make browser` installs Debian's chromium and chromium-driver)")
        if os.environ.get("ZOO_REQUIRE_DATA"):
            pytest.fail(why + "; ZOO_REQUIRE_DATA is set")
        pytest.skip(why)
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1400,1800"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))


def test_page_in_a_browser(compared, tmp_path):
    """The page renders with no console error and every picture decoded; clicking a
    header sorts the rows by it, again reverses them; missing values stay last."""
    _, out, _ = compared
    rows = read_table(out)
    driver = chromium_driver()
    try:
        driver.get((out / report.PAGE_FILE).as_uri())
        assert driver.title == "zoo compare: moons"
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])")
        assert len(images) == 6 and all(done and width > 0 for _, done, width in images), images

        def order():
            return driver.execute_script(
                "return Array.from(document.querySelectorAll('#runs tbody tr'))"
                ".map(r => r.cells[0].textContent)")

        def click(key):
            driver.execute_script(
                f"document.querySelector('#runs th[data-key=\"{key}\"] button').click()")
            return order()

        assert order() == [r["run"] for r in rows]
        values = {r["run"]: float(r["sliced_wasserstein"]) for r in rows}
        assert len(set(values.values())) == 3
        ascending = sorted(values, key=values.get)
        assert click("sliced_wasserstein") == ascending  # numerically
        assert click("sliced_wasserstein") == ascending[::-1]
        nll = {r["run"]: float(r["nll_nats"]) for r in rows if r["nll_nats"]}
        assert click("nll_nats") == sorted(nll, key=nll.get) + ["wgan"]  # "-" last
        assert click("nll_nats") == sorted(nll, key=nll.get, reverse=True) + ["wgan"]
        assert click("run") == sorted(values)
        assert not [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        driver.execute_script("document.querySelector('#runs th[data-key=\"sliced_wasserstein\"]"
                              " button').click()")
        screenshot = tmp_path / "report.png"
        assert driver.save_screenshot(str(screenshot))
    finally:
        driver.quit()
    with Image.open(screenshot) as image:
        assert image.width >= 1000 and image.convert("L").getextrema()[0] < 64  # drawn
