"""Static renderings (SVG plots, PNG spectrograms, WAV bytes) so saved notebooks show something.

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

import numpy as np

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf"]


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


def spectrogram_png(clip, floor_db: float = -80.0) -> bytes:
    """A coloured spectrogram image (low frequencies at the bottom)."""
    samples, rate = waveform_of(clip)
    db = np.clip(spectrogram_db(samples, rate), floor_db, 0)[::-1]
    t = ((db - floor_db) / -floor_db)[..., None]
    dark, light = np.array([20, 20, 60.0]), np.array([255, 220, 80.0])
    return png_bytes((dark + t * (light - dark)).astype(np.uint8))


def img_html(png: bytes, width: int = 360, title: str = "") -> str:
    alt = html.escape(title)
    return (f"<img alt='{alt}' title='{alt}' width='{width}' "
            f"src='data:image/png;base64,{base64.b64encode(png).decode()}'>")


def _scale(values, lo_px, hi_px, lo=None, hi=None):
    values = np.asarray(values, dtype=float)
    lo = np.nanmin(values) if lo is None else lo
    hi = np.nanmax(values) if hi is None else hi
    span = (hi - lo) or 1.0
    return lo_px + (values - lo) / span * (hi_px - lo_px), lo, hi


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
              y_range=(0.0, 1.0), width: int = 560, height: int = 300, dashed: tuple = (),
              hlines: dict | None = None) -> str:
    """Line plot with error bars: series name -> (xs, ys, errs or None).

    hlines: label -> y, or label -> (y, colour): dashed horizontal reference lines across the plot
    (a baseline, chance), each labelled on the line.

        >>> svg = svg_lines({"probe": ([0, 1], [0.6, 0.9], None)}, hlines={"chance": (0.5, "#999")})
        >>> "stroke-dasharray" in svg and ">chance</text>" in svg
        True
    """
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


def svg_scatter(xy: np.ndarray, labels, title: str = "", width: int = 560, height: int = 380,
                extra: np.ndarray | None = None) -> str:
    """Scatter of 2-D points coloured by label; `extra` points (e.g. steered clips) drawn as stars."""
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
