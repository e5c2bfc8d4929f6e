"""``zoo compare DATASET [RUNS...]``: every run on a dataset in one table and one sheet.

    zoo compare digits                        # every run under runs/ on digits
    zoo compare digits runs/vae-digits runs/wgan_gp-digits --num-samples 2000

Writes ``table.md``, ``table.csv``, ``samples.png`` (each run's samples side by
side) and ``index.html`` (a page of all of it, ``zoo.report``) into
``runs/compare-DATASET/`` (or ``--out``). A run whose ``metrics.json`` is
missing, not of the checkpoint that loads (another file, SHA-256 or model), or from
another sample count is evaluated first (``zoo.runs.evaluate_run``), so every row is
measured the same way: FID is biased by the sample count and compares only at equal
counts. A run that cannot be read (a damaged ``run.json``), has no checkpoint that
loads, or diverged gets no row but a line under the table saying why.
"""

import csv
import os

import numpy as np

from zoo import datasets, progress, report, runs

# (column, header, format) for images and for 2-D points; a missing value is "-".
COMMON = [
    ("run", "run", "{}"),
    ("model", "model", "{}"),
    ("epoch", "epoch", "{}"),
    ("steps", "steps", "{}"),
    ("train_minutes", "train min", "{:.1f}"),
    ("bits_per_dim", "bits/dim", "{:.3f}"),
    ("likelihood", "likelihood", "{}"),
]
IMAGE_COLUMNS = COMMON + [
    ("fid", "FID", "{:.2f}"),
    ("kid", "KID", "{:.4g}"),
    ("kid_standard_error", "KID s.e.", "{:.2g}"),
    ("precision", "precision", "{:.3f}"),
    ("recall", "recall", "{:.3f}"),
    ("classifier_score", "classifier score", "{:.2f}"),
    ("samples_per_second", "samples/s", "{:.0f}"),
    ("num_samples", "samples", "{}"),
    ("non_finite_samples", "NaN samples", "{}"),
]
POINT_COLUMNS = COMMON[:5] + [
    ("nll_nats", "NLL nats", "{:.3f}"),
    ("likelihood", "likelihood", "{}"),
    ("sliced_wasserstein", "sliced W2", "{:.3f}"),
    ("mmd_rbf", "MMD^2", "{:.4f}"),
    ("modes_covered", "modes", "{}"),
    ("high_quality_fraction", "high quality", "{:.3f}"),
    ("samples_per_second", "samples/s", "{:.0f}"),
    ("num_samples", "samples", "{}"),
    ("non_finite_samples", "NaN samples", "{}"),
]
# Text: the exact likelihood alone (no sample-quality metric is measured on text).
TEXT_COLUMNS = COMMON[:5] + [
    ("bits_per_dim", "bits/symbol", "{:.3f}"),
    ("nll_nats", "NLL nats", "{:.3f}"),
    ("likelihood", "likelihood", "{}"),
]

# Columns of metrics that only some 2-D datasets have (``DatasetInfo.point_metrics``).
DATASET_MEASURES = ("modes_covered", "high_quality_fraction")


def find_runs(dataset, runs_dir="runs", log=print, damaged=None):
    """The run folders directly under `runs_dir` whose ``run.json`` names `dataset`.

    A run whose ``run.json`` is damaged may be on `dataset`: it is left out, with
    a line to `log`, and put in the dict `damaged` (run -> why), if given.
    """
    if not os.path.isdir(runs_dir):
        return []
    found = []
    for name in sorted(os.listdir(runs_dir)):
        folder = os.path.join(runs_dir, name)
        if os.path.isfile(os.path.join(folder, runs.RUN_FILE)):
            try:
                if runs.read_run(folder)["dataset"] == dataset:
                    found.append(folder)
            except runs.RunError as e:
                log(f"skipping {folder}: {e}")
                if damaged is not None:
                    damaged[folder] = str(e)
    return found


def _stale(run_dir, dataset, num_samples, run, checkpoint):
    """Why `run_dir`'s metrics.json must be (re)computed for `run`'s loaded
    `checkpoint`, or None."""
    path = os.path.join(run_dir, runs.METRICS_FILE)
    if not os.path.isfile(path):
        return "no metrics.json"
    try:
        metrics = runs.read_json(path, "metrics")
    except runs.RunError:
        return "a damaged metrics.json"
    mismatch = runs.metrics_mismatch(metrics, run, checkpoint)
    if mismatch:
        return mismatch
    if metrics.get("split") != "test":
        return f"metrics of the {metrics.get('split')!r} split"
    info = datasets.info(dataset)
    # 2-D points are compared with as many test points as there are samples.
    expected = num_samples if info.kind == "image" else None if info.kind == "text" else \
        min(num_samples, info.splits["test"])
    drawn = (metrics.get("sample_quality") or {}).get("num_samples")
    if drawn != expected:
        return f"metrics from {drawn} samples, not {expected}"
    return None


def _steps_per_epoch(run):
    training = run["training"]
    if training.get("steps_per_epoch"):
        return training["steps_per_epoch"]
    size = datasets.INFOS[run["dataset"]].splits["train"] if run["dataset"] in datasets.INFOS \
        else None
    return -(-size // training["batch_size"]) if size else None


def row(run_dir):
    """One table row (a dict keyed by column) from a run's files."""
    run = runs.read_run(run_dir)
    metrics = runs.read_json(os.path.join(run_dir, runs.METRICS_FILE), "metrics")
    epoch = metrics["epoch"]
    history = [r for r in runs.read_history(run_dir) if r["epoch"] <= epoch]
    per_epoch = _steps_per_epoch(run)
    values = {
        "run": os.path.basename(os.path.normpath(run_dir)),
        "model": run["model"],
        "epoch": epoch,
        "steps": per_epoch * epoch if per_epoch else None,
        "train_minutes": sum(r.get("seconds", 0.0) for r in history) / 60.0,
        "bits_per_dim": metrics.get("bits_per_dim"),
        "nll_nats": metrics.get("nll_nats"),
        "likelihood": metrics.get("likelihood", "none"),
    }
    values.update(metrics.get("sample_quality") or {})
    return values


def write_tables(rows, columns, out_dir, failed=None):
    """``table.md`` (formatted, with a line per run in `failed`: run -> why it has
    no row) and ``table.csv`` (raw values); returns both paths."""
    os.makedirs(out_dir, exist_ok=True)
    md = os.path.join(out_dir, "table.md")
    lines = ["| " + " | ".join(h for _, h, _ in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(report.cell(r.get(k), f)
                                       for k, _, f in columns) + " |")
    for run_dir, why in (failed or {}).items():
        lines.append(f"\nNot evaluated: {run_dir}: {why}")
    with open(md, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    path = os.path.join(out_dir, "table.csv")
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([k for k, _, _ in columns])
        writer.writerows([["" if r.get(k) is None else r.get(k) for k, _, _ in columns]
                          for r in rows])
    return md, path


def sample_sheet(run_dirs, dataset, path, seed=0, data_dir=None, models=None):
    """One PNG with each run's samples (64 images or 1,000 points) side by side, or
    for text one .txt of each run's samples (8) under its name; `models` maps a run
    to its loaded model (the others are loaded here)."""
    from zoo import plotting

    panels = []
    for run_dir in progress.track(run_dirs, "sample sheet", len(run_dirs), "runs"):
        model = (models or {}).get(run_dir) or runs.load_checkpoint(run_dir)[0]
        n = plotting.EPOCH_SAMPLES[model.data_kind]
        samples = np.concatenate(list(model.sample_batches(n, seed)))
        reference = runs.reference_points(model, dataset, data_dir)
        panels.append((os.path.basename(os.path.normpath(run_dir)),
                       plotting.save_picture(model, samples, None, reference=reference)))
    if all(isinstance(picture, str) for _, picture in panels):  # text
        with open(path, "w", encoding="utf-8") as f:
            f.write("".join(f"== {name}\n{text}" for name, text in panels))
        return path
    return plotting.side_by_side(panels, path)


def compare(dataset, run_dirs=None, runs_dir="runs", out=None, num_samples=10_000, seed=0,
            data_dir=None, features=None, log=print):
    """Evaluates what needs it and writes the table and the sheet of `dataset`'s runs.

    A run that cannot be read (a damaged ``run.json``), has no checkpoint that
    loads, or whose checkpoint or evaluation meets NaN/Inf gets no row: a line
    under the table says why, and the other runs are compared. Each run's
    checkpoint is loaded once.

    Returns:
        ``(rows, [table.md, table.csv, samples.png, index.html])`` (samples.txt
        for text; no sheet when no run has a row).
    Raises:
        RunError: no runs, a named run on another dataset, an `out` that is a file
            or cannot be written, or a feature network that cannot score the runs.
    """
    info = datasets.info(dataset)
    failed = {}

    def not_evaluated(run_dir, error):
        failed[run_dir] = str(error)
        log(f"{run_dir}: not evaluated: {error}")

    if run_dirs:
        run_dirs = [os.fspath(r) for r in run_dirs]
        for run_dir in run_dirs:
            try:
                other = runs.read_run(run_dir)["dataset"]
            except runs.RunError as e:  # a damaged run.json
                not_evaluated(run_dir, e)
                continue
            if other != dataset:
                raise runs.RunError(f"run {run_dir!r} is on {other!r}, not {dataset!r}")
    else:
        run_dirs = find_runs(dataset, runs_dir, log, damaged=failed)
        if not run_dirs and not failed:
            raise runs.RunError(f"no runs on {dataset!r} under {runs_dir!r}: train one with "
                                f"`zoo train MODEL --dataset {dataset}`, or name run folders")
    out = _output_folder(out or os.path.join(runs_dir, f"compare-{dataset}"))
    models, rows = {}, []
    for run_dir in [r for r in run_dirs if r not in failed]:
        try:
            loaded = runs.load_checkpoint(run_dir)
        except (runs.RunError, runs.NonFiniteError) as e:  # no checkpoint, or diverged
            not_evaluated(run_dir, e)
            continue
        _, run, checkpoint = loaded
        reason = _stale(run_dir, dataset, num_samples, run, checkpoint)
        if reason:
            log(f"evaluating {run_dir} ({reason})")
            try:
                with progress.task(run_dir):
                    runs.evaluate_run(run_dir, data_dir=data_dir, seed=seed,
                                      num_samples=num_samples, features=features,
                                      loaded=loaded)
            except runs.NonFiniteError as e:  # that run diverged; the others go on
                not_evaluated(run_dir, e)
                continue
        try:
            rows.append(row(run_dir))
        except runs.RunError as e:  # a damaged history.json
            not_evaluated(run_dir, e)
            continue
        models[run_dir] = loaded[0]
    run_dirs = [r for r in run_dirs if r in models]
    columns = {"image": IMAGE_COLUMNS, "text": TEXT_COLUMNS}.get(info.kind, POINT_COLUMNS)
    # A dataset's own 2-D measures are columns only where it has them.
    columns = [c for c in columns if c[0] not in DATASET_MEASURES or c[0] in info.point_metrics]
    try:
        paths = list(write_tables(rows, columns, out, failed))
        if run_dirs:
            sheet = "samples.txt" if info.kind == "text" else "samples.png"
            paths.append(sample_sheet(run_dirs, dataset, os.path.join(out, sheet),
                                      seed, data_dir, models))
        paths.append(report.write_page(dataset, rows, columns, run_dirs, out, failed,
                                       sheet=paths[2] if run_dirs and info.kind != "text"
                                       else None,
                                       data_dir=data_dir, models=models))
    except OSError as e:
        raise runs.RunError(f"cannot write the comparison into --out {out!r}: "
                            f"{e.strerror or e}") from None
    return rows, paths


def _output_folder(out):
    """`out`, created, or a RunError saying why it cannot hold the comparison."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise runs.RunError(f"--out {out!r} is a file; expected a folder (new or existing) "
                            "for table.md, table.csv and samples.png")
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise runs.RunError(f"cannot create the --out folder {out!r}: "
                            f"{e.strerror or e}") from None
    return out
