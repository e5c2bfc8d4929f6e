"""The report page of ``zoo compare``: ``index.html`` beside ``table.md``.

One self-contained page (inline CSS and script, every picture embedded as a
base64 data URI, nothing fetched) with:

- the table, sortable by any column (click its header; again to reverse):
  numbers numerically, text alphabetically, missing values ("-") last; each
  likelihood is shown with its kind (exact, dequantized, discrete, bound, none);
- the sheet of every run's samples (``samples.png``);
- per run: its samples at its last epoch (``samples/epoch_NNNN.png``), its
  training curves from ``history.json`` (one inline SVG per logged loss term,
  by epoch) and, on 2-D data, its density beside the test data (models with an
  exact likelihood; the PNGs go to ``densities/`` beside the page).
"""

import base64
import html
import math
import os

import numpy as np

from zoo import runs

PAGE_FILE = "index.html"
DENSITY_DIR = "densities"
# Records of history.json that are not loss terms.
NOT_TERMS = ("epoch", "learning_rate", "seconds")
CURVE_WIDTH, CURVE_HEIGHT = 260, 150  # pixels of each training curve
DENSITY_BINS = 100  # grid cells per side of a density picture
DENSITY_POINTS = 10_000  # test points in its histogram

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; }
td.text { text-align: left; }
th button { font: inherit; font-weight: bold; border: 0; background: none; cursor: pointer; }
th[aria-sort="ascending"] button::after { content: " \\25B2"; }
th[aria-sort="descending"] button::after { content: " \\25BC"; }
tbody tr:nth-child(even) { background: #f6f6f6; }
.kind { border-radius: 0.7em; padding: 0 0.5em; color: #fff; white-space: nowrap; }
.kind-exact { background: #1b7837; } .kind-dequantized { background: #5aae61; }
.kind-discrete { background: #2166ac; } .kind-bound { background: #d6604d; }
.kind-none { background: #777; }
dl.kinds dt { float: left; clear: left; margin-right: 0.5em; }
dl.kinds dd { margin: 0 0 0.3em 0; }
.run { border-top: 1px solid #ccc; margin-top: 1em; }
.pictures, .curves { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
figure { margin: 0; } figcaption { font-size: 0.85em; color: #555; }
img { image-rendering: pixelated; max-width: 100%; }
svg { background: #fff; border: 1px solid #ddd; }
.failed { color: #a50026; }
"""

# Sorts the table by the clicked column: numbers numerically, text with numbers
# in it by value, missing cells (data-value="") last either way.
SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  var headers = Array.from(table.tHead.rows[0].cells);
  headers.forEach(function (th, column) {
    th.querySelector("button").addEventListener("click", function () {
      var ascending = th.getAttribute("aria-sort") !== "ascending";
      headers.forEach(function (h) { h.setAttribute("aria-sort", "none"); });
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      var numeric = th.dataset.type === "number";
      var body = table.tBodies[0];
      var rows = Array.from(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[column].dataset.value, y = b.cells[column].dataset.value;
        if (x === "" || y === "") { return (x === "") - (y === ""); }
        var order = numeric ? Number(x) - Number(y)
                            : x.localeCompare(y, undefined, {numeric: true});
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def _is_number(value):
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _missing(value):
    return value is None or (_is_number(value) and not math.isfinite(value))


def cell(value, fmt):
    """A table cell: `value` formatted by `fmt`, or "-" when missing or not finite."""
    return "-" if _missing(value) else fmt.format(value)


def data_uri(path):
    """A PNG file as a ``data:image/png;base64,...`` URI."""
    with open(path, "rb") as f:
        return "data:image/png;base64," + base64.b64encode(f.read()).decode("ascii")


def _figure(path, caption, alt):
    return (f'<figure><img src="{data_uri(path)}" alt="{html.escape(alt)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def loss_terms(history):
    """{term: [(epoch, value)]} of every numeric record of `history` (the records
    of ``history.json``) but the epoch, learning rate and seconds, in the order
    they are first logged; non-finite values are left out."""
    terms = {}
    for record in history:
        for key, value in record.items():
            if key in NOT_TERMS or not _is_number(value):
                continue
            points = terms.setdefault(key, [])
            if math.isfinite(value):
                points.append((record["epoch"], float(value)))
    return terms


def _tick(value):
    return f"{value:.4g}"


def curve_svg(term, points, width=CURVE_WIDTH, height=CURVE_HEIGHT):
    """An inline SVG of one loss term by epoch: a polyline with a dot per epoch,
    the epoch range below and the value range at the left."""
    left, right, top, bottom = 52, 10, 22, 24
    epochs = [e for e, _ in points]
    values = [v for _, v in points]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(term)} '
             f'by epoch">',
             f'<text x="{width / 2:.1f}" y="15" text-anchor="middle" font-size="12">'
             f'{html.escape(term)}</text>']
    if not points:
        parts.append(f'<text x="{width / 2:.1f}" y="{height / 2:.1f}" text-anchor="middle" '
                     'font-size="11" fill="#777">no finite value</text></svg>')
        return "".join(parts)
    e0, e1 = min(epochs), max(epochs)
    v0, v1 = min(values), max(values)
    espan, vspan = (e1 - e0) or 1, (v1 - v0) or max(abs(v1), 1.0)
    if v0 == v1:  # a flat line in the middle
        v0, v1 = v0 - vspan / 2, v1 + vspan / 2

    def xy(epoch, value):
        x = left + (epoch - e0) / espan * (width - left - right) if e1 > e0 else \
            (left + width - right) / 2
        y = top + (v1 - value) / (v1 - v0) * (height - top - bottom)
        return x, y

    coords = [xy(e, v) for e, v in points]
    x_low, x_high, y_top, y_low = left, width - right, top, height - bottom
    parts += [
        f'<path d="M{x_low} {y_top} V{y_low} H{x_high}" fill="none" stroke="#999"/>',
        f'<text x="{x_low - 4}" y="{y_top + 4}" text-anchor="end" font-size="10">'
        f"{_tick(v1)}</text>",
        f'<text x="{x_low - 4}" y="{y_low}" text-anchor="end" font-size="10">{_tick(v0)}</text>',
        f'<text x="{x_low}" y="{height - 8}" font-size="10">epoch {e0}</text>',
        f'<text x="{x_high}" y="{height - 8}" text-anchor="end" font-size="10">{e1}</text>',
        '<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="'
        + " ".join(f"{x:.1f},{y:.1f}" for x, y in coords) + '"/>',
    ]
    for (x, y), (e, v) in zip(coords, points):
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="#1f77b4">'
                     f"<title>epoch {e}: {v:.6g}</title></circle>")
    parts.append("</svg>")
    return "".join(parts)


def densities(run_dirs, dataset, out_dir, data_dir=None, models=None):
    """{run folder: PNG} of each run's density beside a histogram of the test data
    (:func:`zoo.plotting.density_beside_data`), for runs on 2-D points whose model
    has an exact likelihood (``likelihood == "exact"``: its ``nll`` is -log p(x));
    written to ``out_dir/densities/RUN.png``. `models` maps a
    run to its loaded model (the others are loaded here)."""
    from zoo import plotting

    pictures = {}
    for run_dir in run_dirs:
        model = (models or {}).get(run_dir) or runs.load_checkpoint(run_dir)[0]
        if model.data_kind != "points" or model.likelihood != "exact":
            continue
        data = runs.reference_points(model, dataset, data_dir, count=DENSITY_POINTS)
        name = os.path.basename(os.path.normpath(run_dir))
        path = os.path.join(out_dir, DENSITY_DIR, f"{name}.png")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        pictures[run_dir] = plotting.density_beside_data(
            plotting.log_density(model), data, path, bins=DENSITY_BINS)
    return pictures


def _last_samples(run_dir, epoch):
    """The run's ``samples/epoch_NNNN.png`` of `epoch`, else its newest one, or None."""
    folder = os.path.join(run_dir, runs.SAMPLES)
    if not os.path.isdir(folder):
        return None
    wanted = f"epoch_{epoch:04d}.png" if isinstance(epoch, int) else None
    names = sorted(n for n in os.listdir(folder) if n.startswith("epoch_") and n.endswith(".png"))
    if wanted in names:
        return os.path.join(folder, wanted)
    return os.path.join(folder, names[-1]) if names else None


def _table(rows, columns, anchors):
    from zoo.base import LIKELIHOODS

    numeric = {key: all(_is_number(r.get(key)) for r in rows if not _missing(r.get(key)))
               and any(not _missing(r.get(key)) for r in rows)
               for key, _, _ in columns}
    head = "".join(f'<th data-type="{"number" if numeric[key] else "text"}" aria-sort="none" '
                   f'data-key="{html.escape(key)}"><button type="button">{html.escape(header)}'
                   "</button></th>" for key, header, _ in columns)
    body = []
    for r in rows:
        cells = []
        for key, _, fmt in columns:
            value = r.get(key)
            sort = "" if _missing(value) else (repr(float(value)) if numeric[key] else str(value))
            text = html.escape(cell(value, fmt))
            if key == "likelihood" and not _missing(value):
                text = (f'<span class="kind kind-{html.escape(str(value))}" '
                        f'title="{html.escape(LIKELIHOODS.get(value, ""))}">{text}</span>')
            elif key == "run" and r.get("run") in anchors:
                text = f'<a href="#{anchors[r["run"]]}">{text}</a>'
            kind = "" if numeric[key] else ' class="text"'
            cells.append(f'<td{kind} data-value="{html.escape(sort)}">{text}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<table class="sortable" id="runs"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def _kinds():
    """What each likelihood kind means (``zoo.base.LIKELIHOODS``)."""
    from zoo.base import LIKELIHOODS

    kinds = "".join(f'<dt><span class="kind kind-{k}">{k}</span></dt><dd>{html.escape(v)}</dd>'
                    for k, v in LIKELIHOODS.items())
    return f'<h2>Likelihood kinds</h2><dl class="kinds">{kinds}</dl>'


def write_page(dataset, rows, columns, run_dirs, out_dir, failed=None, sheet=None,
               data_dir=None, models=None):
    """Writes ``out_dir/index.html`` (see the module's docstring) and returns its path.

    Args:
        dataset: the dataset's name.
        rows: the table's rows (dicts keyed by column, ``"run"`` the folder's name),
            as ``zoo.compare.row`` gives them.
        columns: ``(key, header, format)`` of each column, in order.
        run_dirs: the run folders of the rows.
        out_dir: the folder of the page (and of ``table.md``).
        failed: {run folder: why it has no row}, listed under the table.
        sheet: the PNG of every run's samples side by side, or None.
        data_dir: where the datasets are built (for 2-D test points).
        models: {run folder: its loaded model}, those compare loaded (the
            others are loaded here).
    """
    from zoo import datasets

    os.makedirs(out_dir, exist_ok=True)
    folders = {}
    for run_dir in run_dirs:
        folders.setdefault(os.path.basename(os.path.normpath(run_dir)), []).append(run_dir)
    paired = []  # (row, its run folder)
    for r in rows:
        candidates = folders.get(r.get("run"))
        if candidates:
            paired.append((r, candidates.pop(0)))
    anchors = {r["run"]: f"run-{i}" for i, (r, _) in enumerate(paired)}
    pictures = {}
    if datasets.info(dataset).kind != "image":
        pictures = densities([d for _, d in paired], dataset, out_dir, data_dir, models)

    title = f"zoo compare: {dataset}"
    parts = [f"<h1>{html.escape(title)}</h1>",
             f"<p>{len(rows)} run{'s' if len(rows) != 1 else ''} on "
             f"<code>{html.escape(dataset)}</code>. Click a column's header to sort by it.</p>",
             _table(rows, columns, anchors)]
    for run_dir, why in (failed or {}).items():
        parts.append(f'<p class="failed">Not evaluated: {html.escape(os.fspath(run_dir))}: '
                     f"{html.escape(str(why))}</p>")
    parts.append(_kinds())
    if sheet:
        parts.append("<h2>Samples</h2>" + _figure(sheet, "every run's samples, side by side "
                                                  "(samples.png)", "samples of every run"))
    for r, run_dir in paired:
        name = r["run"]
        section = [f'<section class="run" id="{anchors[name]}"><h2>{html.escape(name)} '
                   f"({html.escape(str(r.get('model')))})</h2>", '<div class="pictures">']
        samples = _last_samples(run_dir, r.get("epoch"))
        if samples:
            section.append(_figure(samples, f"samples at {os.path.basename(samples)[:-4]} "
                                   "(training)", f"samples of {name}"))
        if run_dir in pictures:
            section.append(_figure(pictures[run_dir], "test data (left) and the model's "
                                   "density (right)", f"density of {name}"))
        section.append("</div>")
        terms = loss_terms(runs.read_history(run_dir))
        if terms:
            section.append("<h3>Training curves</h3><div class=\"curves\">"
                           + "".join(curve_svg(t, p) for t, p in terms.items()) + "</div>")
        else:
            section.append("<p>No training history (history.json).</p>")
        parts.append("".join(section) + "</section>")

    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><link rel=\"icon\" href=\"data:,\">"
            f"<style>{STYLE}</style></head><body>\n" + "\n".join(parts)
            + f"\n<script>{SCRIPT}</script>\n</body></html>\n")
    path = os.path.join(out_dir, PAGE_FILE)
    with open(path, "w", encoding="utf-8") as f:
        f.write(page)
    return path
