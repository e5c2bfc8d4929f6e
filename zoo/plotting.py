"""Pictures of samples: image grids and 2-D scatter plots, written as PNG with PIL,
and sequences of symbols (text) written as a .txt file.

    zoo.plotting.save_samples(model, "samples.png", n=64, seed=0)

draws an :func:`image_grid` or a :func:`scatter`, or writes a :func:`text_file`, as
the model's ``data_kind`` says (:func:`picture_suffix`: the file's suffix).
"""

import math
import os

import numpy as np
from PIL import Image, ImageDraw

PADDING = 2  # pixels between grid tiles
PAD_VALUE = 128  # mid grey, distinct from black backgrounds and white strokes
MIN_TILE = 32  # tiles smaller than this are upscaled (nearest) by an integer factor
SCATTER_SIZE = 400  # pixels, square
SAMPLE_COLOUR = (31, 119, 180)
REFERENCE_COLOUR = (190, 190, 190)


def _save(image, path):
    """Writes the PIL `image` to `path` (folders created) and returns `path`; with
    `path` None, returns the image instead."""
    if path is None:
        return image
    folder = os.path.dirname(os.fspath(path))
    if folder:
        os.makedirs(folder, exist_ok=True)
    image.save(path)
    return path


def _to_uint8(images, num_levels):
    """Levels in [0, num_levels - 1] (clipped; NaN -> 0) -> uint8 in [0, 255]."""
    top = float(num_levels - 1)
    images = np.nan_to_num(np.asarray(images, np.float64), nan=0.0, posinf=top, neginf=0.0)
    return np.round(np.clip(images, 0.0, top) * (255.0 / top)).astype(np.uint8)


def image_grid(images, num_levels, path, cols=None):
    """Writes a batch of images as one PNG grid.

    Args:
        images: array of shape ``(N, H, W)``, ``(N, H, W, 1)`` or ``(N, H, W, 3)``
            in raw levels; values are clipped to ``[0, num_levels - 1]``.
        num_levels: the intensity levels of the raw data (17 for digits, 256 for
            8-bit images).
        path: the PNG file to write (folders are created); None: return the
            PIL image instead.
        cols: tiles per row; default ``ceil(sqrt(N))``.
    Returns:
        `path` (or the image). Tiles smaller than 32 pixels are upscaled by an integer factor
        (nearest neighbour, x4 for 8x8 digits) and separated by a grey border.
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or images.shape[0] < 1:
        raise ValueError(
            f"image_grid: expected images of shape (N, H, W), (N, H, W, 1) or "
            f"(N, H, W, 3) with N >= 1, got {images.shape}"
        )
    if num_levels is None or num_levels < 2:
        raise ValueError(f"image_grid: expected num_levels >= 2, got {num_levels!r}")
    n, h, w, c = images.shape
    cols = int(cols or math.ceil(math.sqrt(n)))
    if cols < 1:
        raise ValueError(f"image_grid: expected cols >= 1, got {cols}")
    rows = math.ceil(n / cols)
    scale = max(1, MIN_TILE // h)
    tiles = _to_uint8(images, num_levels).repeat(scale, axis=1).repeat(scale, axis=2)
    th, tw = h * scale, w * scale
    grid = np.full(
        (rows * (th + PADDING) + PADDING, cols * (tw + PADDING) + PADDING, c),
        PAD_VALUE, np.uint8,
    )
    for i, tile in enumerate(tiles):
        top = PADDING + (i // cols) * (th + PADDING)
        left = PADDING + (i % cols) * (tw + PADDING)
        grid[top:top + th, left:left + tw] = tile
    return _save(Image.fromarray(grid[..., 0] if c == 1 else grid, "L" if c == 1 else "RGB"),
                 path)


def _view(points):
    """A square view (x0, y0, side) around the 1st-99th percentiles, with a margin."""
    finite = points[np.all(np.isfinite(points), axis=1)]
    if len(finite) == 0:
        return -1.0, -1.0, 2.0
    low = np.percentile(finite, 1, axis=0)
    high = np.percentile(finite, 99, axis=0)
    side = max(float(np.max(high - low)), 1e-6) * 1.2
    centre = (low + high) / 2.0
    return float(centre[0] - side / 2), float(centre[1] - side / 2), side


def _check_points(points, what):
    points = np.asarray(points, np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"scatter: expected {what} of shape (N, 2), got {points.shape}")
    return points


def scatter(points, path, reference=None, size=SCATTER_SIZE):
    """Writes 2-D points as a PNG scatter plot.

    Args:
        points: array ``(N, 2)``, drawn in blue.
        path: the PNG file to write (folders are created); None: return the
            PIL image instead.
        reference: optional ``(M, 2)`` data points drawn in light grey beneath.
            The view (square, the 1st-99th percentiles plus a margin) comes from
            `reference` when given, so plots of successive epochs share it;
            otherwise from `points`.
        size: the image's side in pixels.
    Returns:
        `path` (or the image). Non-finite points and points outside the view are not drawn.
    """
    points = _check_points(points, "points")
    if reference is not None:
        reference = _check_points(reference, "reference")
    x0, y0, side = _view(reference if reference is not None else points)
    image = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(image)

    def dots(values, colour, radius):
        values = values[np.all(np.isfinite(values), axis=1)]
        px = (values[:, 0] - x0) / side * (size - 1)
        py = (1.0 - (values[:, 1] - y0) / side) * (size - 1)  # y grows upwards
        inside = (px >= 0) & (px < size) & (py >= 0) & (py < size)
        for u, v in zip(px[inside], py[inside]):
            draw.ellipse((u - radius, v - radius, u + radius, v + radius), fill=colour)

    if reference is not None:
        dots(reference, REFERENCE_COLOUR, 1)
    dots(points, SAMPLE_COLOUR, 1.5)
    return _save(image, path)


DENSITY_COLOUR = np.array([8.0, 48.0, 107.0])  # the darkest shade, at each panel's top


def _shade(values):
    """A (H, W) array of non-negative values -> RGB, white at 0 and dark blue at the
    99.5th percentile (and above), so one spike does not wash a panel out."""
    values = np.nan_to_num(np.asarray(values, np.float64), nan=0.0, posinf=0.0)
    top = np.percentile(values, 99.5)
    level = np.clip(values / top, 0.0, 1.0)[..., None] if top > 0 else np.zeros(values.shape + (1,))
    return np.round(255.0 - level * (255.0 - DENSITY_COLOUR)).astype(np.uint8)


def log_density(model):
    """A model's log-density as a function of 2-D points (NumPy in, NumPy out),
    for its density picture: its ``log_prob`` where it has one (which may be
    -inf outside a bounded support, as a grid-normalised energy's), else
    ``-nll``."""
    log_prob = getattr(model, "log_prob", None)
    if callable(log_prob):
        return lambda x: np.asarray(log_prob(x))
    return lambda x: -np.asarray(model.nll(x))


def density_beside_data(log_prob, data, path, size=SCATTER_SIZE, bins=200):
    """Writes a PNG of a 2-D density (right) beside a histogram of data (left).

    Both panels share the square view of :func:`scatter` (from `data`) and are
    shaded white to dark blue, each up to its own 99.5th percentile.

    Args:
        log_prob: a function from float32 points ``(M, 2)`` to log densities ``(M,)``,
            e.g. ``model.log_prob``.
        data: array ``(N, 2)`` of data points.
        path: the PNG file to write (folders are created).
        size: each panel's side in pixels.
        bins: grid cells per side, for both the histogram and the density.
    Returns:
        `path`.
    """
    data = _check_points(data, "data")
    x0, y0, side = _view(data)
    centres = (np.arange(bins) + 0.5) / bins * side
    gx, gy = np.meshgrid(x0 + centres, y0 + side - centres)  # row 0 is the top
    grid = np.stack([gx.ravel(), gy.ravel()], 1).astype(np.float32)
    density = np.exp(np.asarray(log_prob(grid), np.float64)).reshape(bins, bins)
    counts, _, _ = np.histogram2d(data[:, 1], data[:, 0], bins=bins,
                                  range=[[y0, y0 + side], [x0, x0 + side]])
    panels = [Image.fromarray(_shade(v)).resize((size, size), Image.NEAREST)
              for v in (counts[::-1], density)]
    image = Image.new("RGB", (2 * size + PADDING * 4, size), (255, 255, 255))
    image.paste(panels[0], (0, 0))
    image.paste(panels[1], (size + PADDING * 4, 0))
    return _save(image, path)


# Samples per picture: those of each epoch in training, and at most those of one
# picture (``zoo sample`` draws any number, but pictures only the first ones).
EPOCH_SAMPLES = {"images": 64, "points": 1000, "sequences": 8}
PICTURE_LIMITS = {"images": 256, "points": 10_000, "sequences": 64}
# The file of a picture of samples, by data kind (".png" for the others).
PICTURE_SUFFIXES = {"sequences": ".txt"}
# The line between two samples of a text file.
TEXT_SEPARATOR = "-" * 40


def picture_limit(model):
    """The most samples one picture of this model's data shows."""
    return PICTURE_LIMITS.get(model.data_kind, 0)


def picture_suffix(model):
    """The suffix of the file :func:`save_picture` writes for this model's data:
    ``.txt`` for sequences, ``.png`` for pictures."""
    return PICTURE_SUFFIXES.get(model.data_kind, ".png")


def symbols_to_text(symbols):
    """A sequence of byte values (levels 0..255, clipped and rounded) as text:
    UTF-8, each byte that is not part of a character shown as U+FFFD."""
    values = np.clip(np.round(np.nan_to_num(np.asarray(symbols, np.float64))), 0, 255)
    return bytes(values.astype(np.uint8)).decode("utf-8", errors="replace")


def text_file(sequences, path):
    """Writes sequences of bytes as text (:func:`symbols_to_text`), each followed by
    a line of :data:`TEXT_SEPARATOR`; with `path` None, returns the text. Returns
    `path`."""
    sequences = np.asarray(sequences)
    if sequences.ndim != 2 or sequences.shape[0] < 1:
        raise ValueError(f"text_file: expected sequences of shape (N, T) with N >= 1, got "
                         f"{sequences.shape}")
    text = "".join(f"{symbols_to_text(s)}\n{TEXT_SEPARATOR}\n" for s in sequences)
    if path is None:
        return text
    folder = os.path.dirname(os.fspath(path))
    if folder:
        os.makedirs(folder, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def save_picture(model, samples, path, reference=None):
    """Writes samples of `model` as a PNG, as its data are drawn: an
    :func:`image_grid` of images, a :func:`scatter` of 2-D points (over
    `reference` points if given), a :func:`text_file` of sequences. Returns `path`
    (the PIL image, or the text, if it is None)."""
    kind = model.data_kind
    if kind == "images":
        return image_grid(samples, model.num_levels, path)
    if kind == "points":
        return scatter(samples, path, reference=reference)
    if kind == "sequences" and model.num_levels <= 256:
        return text_file(samples, path)
    raise ValueError(f"save_picture: no picture for {kind} of shape {model.data_shape}; "
                     f"pictures are drawn of {sorted(PICTURE_LIMITS)}")


def save_samples(model, path, n, seed, reference=None):
    """Draws `n` samples of `model` with `seed` and writes them with
    :func:`save_picture`: for a class-conditional model of images, one row per
    class (``n // num_classes`` samples each, at least one). Returns `path`."""
    classes = getattr(model, "num_classes", 0)
    if classes and model.data_kind == "images":
        per_class = max(1, n // classes)
        rows = [np.asarray(model.sample(per_class, seed=seed, label=label))
                for label in range(classes)]
        return image_grid(np.concatenate(rows), model.num_levels, path, cols=per_class)
    return save_picture(model, np.asarray(model.sample(n, seed=seed)), path, reference)


TITLE_HEIGHT = 16  # pixels of the caption strip above each panel of a sheet


def side_by_side(panels, path, background=(255, 255, 255)):
    """Writes one PNG of pictures side by side, each under its caption.

    Args:
        panels: ``(caption, PIL image)`` pairs, drawn left to right.
        path: the PNG file to write (folders are created).
    Returns:
        `path`.
    """
    if not panels:
        raise ValueError("side_by_side: expected at least one (caption, image) panel")
    images = [image.convert("RGB") for _, image in panels]
    width = sum(image.width for image in images) + PADDING * (len(images) + 1)
    height = max(image.height for image in images) + TITLE_HEIGHT + 2 * PADDING
    sheet = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(sheet)
    left = PADDING
    for (caption, _), image in zip(panels, images):
        draw.text((left, 2), str(caption)[: max(4, image.width // 6)], fill=(0, 0, 0))
        sheet.paste(image, (left, TITLE_HEIGHT + PADDING))
        left += image.width + PADDING
    return _save(sheet, path)


def histograms(groups, path, bins=40, size=(400, 240)):
    """Writes one PNG of overlaid histograms (each normalised to its own count),
    one colour per group, the legend and the range of values in the corner.

    Args:
        groups: ``(label, values)`` pairs (finite values; at most 4 groups).
        path: the PNG file to write (folders are created).
    Returns:
        `path`.
    """
    colours = [SAMPLE_COLOUR, (214, 39, 40), (44, 160, 44), (148, 103, 189)]
    if not 1 <= len(groups) <= len(colours):
        raise ValueError(f"histograms: expected 1 to {len(colours)} groups, got {len(groups)}")
    arrays = [np.asarray(v, np.float64).ravel() for _, v in groups]
    if any(a.size == 0 or not np.all(np.isfinite(a)) for a in arrays):
        raise ValueError("histograms: expected non-empty groups of finite values")
    low = min(a.min() for a in arrays)
    high = max(a.max() for a in arrays)
    high = high if high > low else low + 1.0
    edges = np.linspace(low, high, bins + 1)
    counts = [np.histogram(a, edges)[0] / a.size for a in arrays]
    top = max(c.max() for c in counts)
    width, height = size
    image = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(image)
    plot_top, plot_bottom = 14 * len(groups) + 4, height - 14
    for colour, c in zip(colours, counts):
        for i, value in enumerate(c):
            x0 = int(i * width / bins)
            x1 = int((i + 1) * width / bins) - 1
            y = plot_bottom - int((plot_bottom - plot_top) * value / top)
            draw.rectangle([x0, y, x1, plot_bottom], outline=colour)
    for k, ((label, _), colour) in enumerate(zip(groups, colours)):
        draw.text((4, 2 + 14 * k), str(label), fill=colour)
    draw.text((4, height - 12), f"{low:.3g}", fill=(0, 0, 0))
    draw.text((width - 60, height - 12), f"{high:.3g}", fill=(0, 0, 0))
    return _save(image, path)
