"""Static renderings (SVG plots, spectrograms with axes and a dB scale, WAV bytes) so saved notebooks show them.

Every view puts one of these in its display bundle as ``text/html`` next to the live widget, so
GitHub / nbviewer / nbconvert show the plot and the players without any widget state (a saved
FigureWidget would embed ~5 MB of plotly.js).

    >>> import numpy as np
    >>> svg = svg_lines({"resid": ([0, 1, 2], [0.5, 0.7, 0.9], [0.02, 0.03, 0.01])}, title="acc")
    >>> svg.startswith("<svg") and "acc" in svg
    True
    >>> wav_bytes(np.zeros(800, np.float32), 16000)[:4]
    b'RIFF'
"""
from __future__ import annotations

import base64
import html
import io
import struct
import wave
import zlib
from dataclasses import dataclass

import numpy as np

from workbench.errors import OutOfRangeError, WrongTypeError

# magma (matplotlib's perceptually uniform map), 9 anchors from black through purple to pale yellow
MAGMA = np.array([[0, 0, 4], [28, 16, 68], [79, 18, 123], [129, 37, 129], [181, 54, 122], [229, 80, 100],
                  [251, 135, 97], [254, 194, 135], [252, 253, 191]], dtype=float)
_MAGMA_LUT = np.stack([np.interp(np.linspace(0, 1, 256), np.linspace(0, 1, len(MAGMA)), MAGMA[:, c])
                       for c in range(3)], axis=-1).astype(np.uint8)
# Okabe & Ito's colour-blind-safe palette (blue, orange, bluish green, reddish purple, sky blue, vermillion,
# yellow, black): distinct for deuteranopes and protanopes too, in an order that puts the clearest first
MIN_SIZE_PX = 200  # a line plot or scatter smaller than this has no room for its axes and legend
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]


@dataclass(frozen=True)
class Spectrogram:
    """db: (rows, frames) level in dB re a full-scale sine; freqs_hz: the rows' centres, ascending."""

    db: np.ndarray
    freqs_hz: np.ndarray
    duration_s: float


def waveform_of(clip) -> tuple[np.ndarray, int]:
    """(mono float32 samples, sample_rate_hz) from a Clip-like object or a (samples, rate) pair."""
    if isinstance(clip, tuple):
        samples, rate = clip
    else:
        samples, rate = clip.waveform, clip.sample_rate_hz
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim == 2:
        samples = samples.mean(axis=0)
    return samples, int(rate)


def wav_bytes(samples: np.ndarray, sample_rate_hz: int) -> bytes:
    """16-bit PCM mono WAV (peak-normalised only when it would clip)."""
    samples = np.asarray(samples, dtype=np.float32).reshape(-1)
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    if peak > 1.0:
        samples = samples / peak
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sample_rate_hz))
        w.writeframes(pcm)
    return buf.getvalue()


def audio_html(clip, label: str = "", max_rate_hz: int = 16000) -> str:
    """An <audio> tag with the clip inlined as a data URL (plays in static HTML too).

    Above `max_rate_hz` the clip is decimated by an integer factor (pairwise means) to keep saved
    notebooks small: a 4 s clip is ~170 kB of base64 at 16 kHz.
    """
    samples, rate = waveform_of(clip)
    factor = max(1, int(np.ceil(rate / max_rate_hz)))
    if factor > 1:
        usable = len(samples) // factor * factor
        samples, rate = samples[:usable].reshape(-1, factor).mean(axis=1), rate // factor
    src = "data:audio/wav;base64," + base64.b64encode(wav_bytes(samples, rate)).decode()
    cap = f"<div style='font:12px sans-serif'>{html.escape(label)}</div>" if label else ""
    return f"<div>{cap}<audio controls src='{src}'></audio></div>"


def spectrogram_db(samples: np.ndarray, sample_rate_hz: int, n_fft: int = 512, hop: int = 256,
                   max_hz: float = 8000.0) -> np.ndarray:
    """Log-magnitude STFT, shape (freq_bins, frames), in dB (0 = loudest)."""
    samples = np.asarray(samples, dtype=np.float32).reshape(-1)
    if samples.size < n_fft:
        samples = np.pad(samples, (0, n_fft - samples.size))
    frames = np.lib.stride_tricks.sliding_window_view(samples, n_fft)[::hop] * np.hanning(n_fft)
    mag = np.abs(np.fft.rfft(frames, axis=1)).T
    keep = max(2, int(len(mag) * min(1.0, max_hz / (sample_rate_hz / 2))))
    db = 20 * np.log10(mag[:keep] + 1e-6)
    return db - db.max()


def png_bytes(gray_or_rgb: np.ndarray) -> bytes:
    """Encode a uint8 (H, W) or (H, W, 3) array as PNG with zlib only (no Pillow needed)."""
    img = np.ascontiguousarray(gray_or_rgb, dtype=np.uint8)
    height, width = img.shape[:2]
    color = 2 if img.ndim == 3 else 0
    raw = b"".join(b"\x00" + img[row].tobytes() for row in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, color, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def log_spectrogram(clip, rows: int = 160, min_hz: float = 40.0, max_hz: float = 16000.0,
                    max_frames: int = 640) -> Spectrogram:
    """Level in dB re a full-scale sine on `rows` log-spaced frequencies (triangular bands, low first).

    The window is ~64 ms (2048 samples at 32 kHz), hop 1/8 of it; above `max_frames` frames, neighbouring
    frames are averaged so a long clip stays a small image.

        >>> spec = log_spectrogram((np.sin(np.arange(8000) * 2 * np.pi * 440 / 8000), 8000))
        >>> round(float(spec.freqs_hz[spec.db.mean(axis=1).argmax()]), -1), bool(-3 < spec.db.max() <= 0)
        (440.0, True)
    """
    samples, rate = waveform_of(clip)
    n_fft = int(2 ** np.ceil(np.log2(rate * 0.064)))
    hop = n_fft // 8
    if samples.size < n_fft:
        samples = np.pad(samples, (0, n_fft - samples.size))
    window = np.hanning(n_fft).astype(np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(samples, n_fft)[::hop] * window
    # a full-scale sine peaks at sum(window) / 2 in its bin: that is 0 dB
    spectrum = np.fft.rfft(frames, axis=1)
    power = (spectrum.real ** 2 + spectrum.imag ** 2) / np.float32(window.sum() / 2) ** 2
    bin_hz = rate / n_fft
    top_hz = min(max_hz, rate / 2)
    freqs_hz = np.geomspace(max(min_hz, bin_hz), top_hz, rows)
    half_width = np.maximum(np.gradient(freqs_hz), bin_hz)  # never narrower than a bin: no empty band
    bins_hz = np.arange(power.shape[1]) * bin_hz
    weights = np.clip(1 - np.abs(bins_hz[None] - freqs_hz[:, None]) / half_width[:, None], 0, None)
    weights /= weights.sum(axis=1, keepdims=True)
    # each band's bins are contiguous and few: weighted sums over them, not a (rows x bins) matmul (5x faster)
    band, bin_index = np.nonzero(weights)
    starts = np.flatnonzero(np.r_[True, band[1:] != band[:-1]])
    level = np.add.reduceat(power[:, bin_index] * weights[band, bin_index].astype(np.float32), starts, axis=1).T
    group = int(np.ceil(level.shape[1] / max_frames))
    if group > 1:
        usable = level.shape[1] // group * group
        level = level[:, :usable].reshape(rows, -1, group).mean(axis=2)
    return Spectrogram(10 * np.log10(level + np.float32(1e-12)), freqs_hz, len(samples) / rate)


def shared_db_range(spectrograms, range_db: float = 80.0) -> tuple[float, float]:
    """(vmin, vmax) in dB for drawing several spectrograms on one colour scale: the loudest cell of any
    of them (rounded up to 5 dB) at the top, `range_db` below it at the bottom."""
    loudest = max(float(spec.db.max()) for spec in spectrograms)
    vmax = 5.0 * float(np.ceil(loudest / 5.0)) + 0.0  # + 0.0: no "-0" on the colour bar
    return vmax - float(range_db), vmax


def colour_of_db(db: np.ndarray, db_range: tuple[float, float]) -> np.ndarray:
    """uint8 RGB (magma-like, perceptually ordered, readable in grey) of dB values on `db_range`."""
    share = np.clip((np.asarray(db, np.float32) - db_range[0]) / ((db_range[1] - db_range[0]) or 1.0), 0, 1)
    return _MAGMA_LUT[(share * 255).astype(np.intp)]


def spectrogram_png(clip, db_range: tuple[float, float] | None = None) -> bytes:
    """The bare spectrogram image (no axes; low frequencies at the bottom), see `spectrogram_svg`."""
    spec = clip if isinstance(clip, Spectrogram) else log_spectrogram(clip)
    return png_bytes(colour_of_db(spec.db[::-1], db_range or shared_db_range([spec])))


def spectrogram_svgs(clips, spans_s=None, width_px: int | None = None,
                     range_db: float = 80.0) -> tuple[list[str], tuple[float, float]]:
    """Spectrograms of several clips on ONE colour scale (e.g. original and steered): (svgs, (vmin, vmax)).

    spans_s: one (start_s, end_s) or None per clip, shaded on its image. width_px: None fills the container.

        >>> tone = lambda amp: (amp * np.sin(np.arange(8000) * 0.3), 8000)
        >>> svgs, db_range = spectrogram_svgs([tone(1.0), tone(0.01)])
        >>> db_range, all(f"data-db-range='{db_range[0]:g} {db_range[1]:g}'" in s for s in svgs)
        ((-80.0, 0.0), True)
    """
    specs = [log_spectrogram(clip) for clip in clips]
    if not specs:
        return [], (-80.0, 0.0)
    db_range = shared_db_range(specs, range_db)
    spans_s = list(spans_s) if spans_s is not None else [None] * len(specs)
    return [spectrogram_svg(spec, db_range, span_s=span, width_px=width_px)
            for spec, span in zip(specs, spans_s)], db_range


def spectrogram_svg(spec: Spectrogram, db_range: tuple[float, float], span_s: tuple | None = None,
                    width_px: int | None = None, width: int = 440, height: int = 220) -> str:
    """A spectrogram with a time axis (s), a log-frequency axis (Hz) and a colour bar (dB re full scale)."""
    left, right, top, bottom = 46, width - 62, 8, height - 34
    lo_hz, hi_hz = float(spec.freqs_hz[0]), float(spec.freqs_hz[-1])
    duration_s = spec.duration_s or 1.0
    size = f"width='{width_px}'" if width_px else "width='100%' style='max-width:560px'"
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {width} {height}' {size} "
             f"font-family='sans-serif' font-size='11' class='wb-spectrogram' "
             f"data-db-range='{db_range[0]:g} {db_range[1]:g}'>",
             f"<rect width='{width}' height='{height}' fill='white'/>",
             _svg_image(spectrogram_png(spec, db_range), left, top, right - left, bottom - top)]
    if span_s is not None:
        x0 = left + max(0.0, span_s[0]) / duration_s * (right - left)
        x1 = max(x0 + 3, left + min(duration_s, span_s[1]) / duration_s * (right - left))
        parts.append(f"<rect x='{x0:.1f}' y='{top}' width='{x1 - x0:.1f}' height='{bottom - top}' fill='#50ffa0' "
                     f"fill-opacity='0.25' stroke='#50ffa0' stroke-width='1.5'><title>activating span "
                     f"{span_s[0]:.2f}-{span_s[1]:.2f} s</title></rect>")
    parts.append(f"<rect x='{left}' y='{top}' width='{right - left}' height='{bottom - top}' fill='none' "
                 "stroke='#666'/>")
    for hz in (20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000):
        if lo_hz <= hz <= hi_hz:
            y = bottom - np.log(hz / lo_hz) / np.log(hi_hz / lo_hz) * (bottom - top)
            label = f"{hz // 1000}k" if hz >= 1000 else str(hz)
            parts.append(f"<line x1='{left - 4}' x2='{left}' y1='{y:.1f}' y2='{y:.1f}' stroke='#666'/>"
                         f"<text x='{left - 6}' y='{y + 4:.1f}' text-anchor='end'>{label}</text>")
    step_s = next((s for s in (0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60) if duration_s / s <= 8), 120)
    for tick in np.arange(0, duration_s + 1e-9, step_s):
        x = left + tick / duration_s * (right - left)
        parts.append(f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{bottom}' y2='{bottom + 4}' stroke='#666'/>"
                     f"<text x='{x:.1f}' y='{bottom + 15}' text-anchor='middle'>{tick:g}</text>")
    parts.append(f"<text x='{(left + right) / 2}' y='{height - 4}' text-anchor='middle'>time (s)</text>"
                 f"<text x='11' y='{(top + bottom) / 2}' transform='rotate(-90 11 {(top + bottom) / 2})' "
                 "text-anchor='middle'>frequency (Hz, log)</text>")
    bar_x = right + 10
    gradient = colour_of_db(np.linspace(db_range[1], db_range[0], 64)[:, None], db_range)
    parts.append(_svg_image(png_bytes(gradient), bar_x, top, 10, bottom - top))
    parts.append(f"<rect x='{bar_x}' y='{top}' width='10' height='{bottom - top}' fill='none' stroke='#666'>"
                 "<title>level in dB relative to a full-scale sine; clips shown together share this scale</title>"
                 "</rect>")
    for tick in np.arange(np.ceil(db_range[0] / 20) * 20, db_range[1] + 1e-9, 20):
        y = top + (db_range[1] - tick) / ((db_range[1] - db_range[0]) or 1) * (bottom - top)
        parts.append(f"<text x='{bar_x + 13}' y='{y + 4:.1f}'>{tick:g}</text>")
    parts.append(f"<text x='{bar_x + 5}' y='{bottom + 15}' text-anchor='middle'>dB</text></svg>")
    return "".join(parts)


def _svg_image(png: bytes, x: float, y: float, width: float, height: float) -> str:
    return (f"<image x='{x}' y='{y}' width='{width}' height='{height}' preserveAspectRatio='none' "
            f"href='data:image/png;base64,{base64.b64encode(png).decode()}'/>")


def img_html(png: bytes, width: int = 360, title: str = "") -> str:
    alt = html.escape(title)
    return (f"<img alt='{alt}' title='{alt}' width='{width}' "
            f"src='data:image/png;base64,{base64.b64encode(png).decode()}'>")


def svg_img_html(svg: str, title: str = "") -> str:
    """An SVG as an <img> (a data URL): a static page keeps its own SVGs apart from the image's."""
    alt = html.escape(title)
    return f"<img alt='{alt}' title='{alt}' src='data:image/svg+xml;base64,{base64.b64encode(svg.encode()).decode()}'>"


def _scale(values, lo_px, hi_px, lo=None, hi=None):
    values = np.asarray(values, dtype=float)
    lo = np.nanmin(values) if lo is None else lo
    hi = np.nanmax(values) if hi is None else hi
    span = (hi - lo) or 1.0
    return lo_px + (values - lo) / span * (hi_px - lo_px), lo, hi


def _size(size_px) -> tuple[int, int]:
    """(width, height) in pixels from `size_px`, each a whole number of at least 200 (room for the axes)."""
    try:
        width, height = (int(v) for v in size_px)
    except (TypeError, ValueError):
        raise WrongTypeError(f"size_px={size_px!r}: pass (width, height) in pixels, e.g. (560, 300)") from None
    if min(width, height) < MIN_SIZE_PX:
        raise OutOfRangeError(f"size_px={size_px!r}: each side needs at least {MIN_SIZE_PX} pixels (room for the "
                              "axes and the legend), e.g. (560, 300)")
    return width, height


def _frame(width, height, title, x_label, y_label) -> list[str]:
    esc = html.escape
    return [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
            f"font-family='sans-serif' font-size='11'>",
            f"<rect width='{width}' height='{height}' fill='white'/>",
            f"<text x='{width / 2}' y='16' text-anchor='middle' font-size='13'>{esc(title)}</text>",
            f"<text x='{width / 2}' y='{height - 4}' text-anchor='middle'>{esc(x_label)}</text>",
            f"<text x='12' y='{height / 2}' transform='rotate(-90 12 {height / 2})' "
            f"text-anchor='middle'>{esc(y_label)}</text>"]


def svg_lines(series: dict, title: str = "", x_label: str = "layer", y_label: str = "accuracy",
              y_range=(0.0, 1.0), size_px: tuple[int, int] = (560, 300), dashed: tuple = (),
              hlines: dict | None = None) -> str:
    """Line plot with error bars: series name -> (xs, ys, errs or None).

    size_px: (width, height) of the picture. dashed: names of the series drawn dashed. hlines: label -> y,
    or label -> (y, colour): dashed horizontal reference lines across the plot (a baseline, chance), each
    labelled on the line.

        >>> svg = svg_lines({"probe": ([0, 1], [0.6, 0.9], None)}, hlines={"chance": (0.5, "#999")})
        >>> "stroke-dasharray" in svg and ">chance</text>" in svg
        True
    """
    width, height = _size(size_px)
    left, right, top, bottom = 48, width - 110, 26, height - 34
    all_x = np.concatenate([np.asarray(v[0], float) for v in series.values()]) if series else np.zeros(1)
    x_lo, x_hi = float(all_x.min()), float(all_x.max())
    parts = _frame(width, height, title, x_label, y_label)
    parts.append(f"<rect x='{left}' y='{top}' width='{right - left}' height='{bottom - top}' "
                 "fill='none' stroke='#999'/>")
    span = (y_range[1] - y_range[0]) or 1.0
    step = min((m * 10 ** e for e in range(-3, 4) for m in (1, 2, 2.5, 5) if m * 10 ** e >= span / 6), default=span)
    for tick in np.arange(np.ceil(y_range[0] / step) * step, y_range[1] + 1e-9, step):
        y = bottom - (tick - y_range[0]) / ((y_range[1] - y_range[0]) or 1) * (bottom - top)
        parts.append(f"<text x='{left - 4}' y='{y + 4:.1f}' text-anchor='end'>{tick:.2g}</text>")
    for x in sorted(set(all_x.tolist())):
        px = left + (x - x_lo) / ((x_hi - x_lo) or 1) * (right - left)
        parts.append(f"<text x='{px:.1f}' y='{bottom + 14}' text-anchor='middle'>{x:g}</text>")
    for i, (name, (xs, ys, errs)) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        px, _, _ = _scale(xs, left, right, x_lo, x_hi)
        py, _, _ = _scale(ys, bottom, top, *y_range)
        dash = " stroke-dasharray='4 3'" if name in dashed else ""
        pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px, py))
        parts.append(f"<polyline points='{pts}' fill='none' stroke='{color}' stroke-width='2'{dash}/>")
        for j, (a, b) in enumerate(zip(px, py)):
            if errs is not None:
                e = float(errs[j]) / ((y_range[1] - y_range[0]) or 1) * (bottom - top)
                parts.append(f"<line x1='{a:.1f}' x2='{a:.1f}' y1='{b - e:.1f}' y2='{b + e:.1f}' stroke='{color}'/>")
            parts.append(f"<circle cx='{a:.1f}' cy='{b:.1f}' r='3' fill='{color}'/>")
        parts.append(f"<text x='{right + 8}' y='{top + 14 + 14 * i}' fill='{color}'>{html.escape(name)}</text>")
    parts += _hlines(hlines or {}, left, right, top, bottom, y_range, first_color=len(series))
    parts.append("</svg>")
    return "".join(parts)


def _hlines(hlines: dict, left, right, top, bottom, y_range, first_color: int = 0) -> list[str]:
    """Dashed horizontal lines, each labelled just above it at the right (labels nudged apart)."""
    parts, label_ys = [], []
    for j, (label, value) in enumerate(hlines.items()):
        y_value, color = value if isinstance(value, tuple) else (value, PALETTE[(first_color + j) % len(PALETTE)])
        if y_value is None or not np.isfinite(y_value):
            continue
        py = float(_scale([y_value], bottom, top, *y_range)[0][0])
        parts.append(f"<line x1='{left}' x2='{right}' y1='{py:.1f}' y2='{py:.1f}' stroke='{color}' "
                     "stroke-width='1.5' stroke-dasharray='6 4'/>")
        text_y = py - 3
        while any(abs(text_y - other) < 11 for other in label_ys):
            text_y -= 11
        label_ys.append(text_y)
        parts.append(f"<text x='{right - 4}' y='{text_y:.1f}' text-anchor='end' fill='{color}'>"
                     f"{html.escape(label)}</text>")
    return parts


def svg_scatter(xy: np.ndarray, labels, title: str = "", size_px: tuple[int, int] = (560, 380),
                extra: np.ndarray | None = None) -> str:
    """Scatter of 2-D points coloured by label; `extra` points (e.g. steered clips) drawn as stars.

    size_px: (width, height) of the picture.
    """
    width, height = _size(size_px)
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    pts = xy if extra is None or len(extra) == 0 else np.vstack([xy, np.asarray(extra, float).reshape(-1, 2)])
    left, right, top, bottom = 20, width - 110, 26, height - 20
    px, _, _ = _scale(pts[:, 0], left, right) if len(pts) else (np.zeros(0), 0, 0)
    py, _, _ = _scale(pts[:, 1], bottom, top) if len(pts) else (np.zeros(0), 0, 0)
    parts = _frame(width, height, title, "", "")
    names = list(dict.fromkeys(str(label) for label in labels))
    for i, label in enumerate(labels):
        color = PALETTE[names.index(str(label)) % len(PALETTE)]
        parts.append(f"<circle cx='{px[i]:.1f}' cy='{py[i]:.1f}' r='3.5' fill='{color}' fill-opacity='0.75'/>")
    for i in range(len(xy), len(pts)):
        parts.append(f"<text x='{px[i]:.1f}' y='{py[i] + 5:.1f}' text-anchor='middle' font-size='16'>&#9733;</text>")
    for i, name in enumerate(names):
        parts.append(f"<text x='{right + 8}' y='{top + 14 + 14 * i}' fill='{PALETTE[i % len(PALETTE)]}'>"
                     f"{html.escape(name)}</text>")
    parts.append("</svg>")
    return "".join(parts)


def table_html(rows: list[dict], columns: list[str] | None = None, digits: int = 3) -> str:
    """A plain HTML table of dict rows (floats rounded), e.g. a sweep's rows."""
    columns = columns or list(dict.fromkeys(k for r in rows for k in r))

    def cell(v):
        return f"{v:.{digits}f}" if isinstance(v, float) else html.escape(str(v))
    head = "".join(f"<th style='padding:2px 8px'>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td style='padding:2px 8px;text-align:right'>{cell(r.get(c, ''))}</td>"
                                    for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def confusion_html(confusion: np.ndarray, classes, title: str = "") -> str:
    """A confusion matrix (rows: true class, columns: predicted) with cells shaded by row share."""
    confusion = np.asarray(confusion)
    share = confusion / np.maximum(confusion.sum(1, keepdims=True), 1)
    names = [html.escape(str(c)) for c in classes]
    head = "".join(f"<th style='padding:2px 8px'>{n}</th>" for n in names)
    body = ""
    for i, name in enumerate(names):
        cells = "".join(f"<td style='padding:2px 8px;text-align:right;background:rgba(31,119,180,{share[i, j]:.2f})'>"
                        f"{confusion[i, j]}</td>" for j in range(len(names)))
        body += f"<tr><th style='padding:2px 8px'>{name}</th>{cells}</tr>"
    cap = f"<caption>{html.escape(title)}</caption>" if title else ""
    return f"<table>{cap}<tr><th>true \\ predicted</th>{head}</tr>{body}</table>"


def heatmap_png(z: np.ndarray, scale_px: int = 6, limit: float | None = None) -> bytes:
    """A diverging (blue - white - red) PNG of a 2-D array, row 0 at the bottom, symmetric about 0.

    >>> heatmap_png(np.array([[-1.0, 0.0], [0.5, 1.0]]))[:4]
    b'\\x89PNG'
    """
    z = np.nan_to_num(np.asarray(z, dtype=float))[::-1]
    limit = float(np.max(np.abs(z))) if limit is None else float(limit)
    t = np.clip(z / (limit or 1.0), -1, 1)[..., None]
    white, red, blue = np.array([247, 247, 247.0]), np.array([178, 24, 43.0]), np.array([33, 102, 172.0])
    rgb = np.where(t >= 0, white + t * (red - white), white - t * (blue - white))
    rgb = np.repeat(np.repeat(rgb, scale_px, axis=0), max(1, scale_px // 2), axis=1)
    return png_bytes(rgb.astype(np.uint8))
