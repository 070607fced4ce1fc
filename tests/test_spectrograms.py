"""Spectrograms a class can read (issue 29, item 4): time (s) and log-frequency (Hz) axes, a colour bar in dB,
and the clips shown together (the comparer's original and steered, a feature's top clips) on ONE colour scale."""
from __future__ import annotations

import base64
import re
import struct
import xml.etree.ElementTree as ET
import zlib

import numpy as np
import pytest

from widgets import ClipComparer
from widgets.static import log_spectrogram, shared_db_range, spectrogram_png, spectrogram_svg, spectrogram_svgs

RATE = 32000
SVG = "{http://www.w3.org/2000/svg}"


def tone(freq_hz=440.0, amplitude=0.5, seconds=1.0, rate=RATE):
    return (amplitude * np.sin(2 * np.pi * freq_hz * np.arange(int(rate * seconds)) / rate)).astype(np.float32), rate


def decode_png(png: bytes) -> np.ndarray:
    """The (H, W, 3) pixels of a PNG as `png_bytes` writes it (8-bit RGB, filter 0 on every row)."""
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height, depth, colour = struct.unpack(">IIBB", png[16:26])
    assert (depth, colour) == (8, 2)
    raw = zlib.decompress(png[png.index(b"IDAT") + 4: png.index(b"IEND") - 8])
    rows = np.frombuffer(raw, np.uint8).reshape(height, 1 + 3 * width)
    assert not rows[:, 0].any()
    return rows[:, 1:].reshape(height, width, 3)


def images_of(svg: str) -> list[tuple[dict, np.ndarray]]:
    """(attributes, pixels) of each embedded PNG; parsing also checks the SVG is well-formed XML."""
    root = ET.fromstring(svg)
    out = []
    for image in root.iter(f"{SVG}image"):
        href = image.get("href")
        assert href.startswith("data:image/png;base64,")
        out.append((image.attrib, decode_png(base64.b64decode(href.split(",", 1)[1]))))
    return out


def test_levels_are_db_re_full_scale_on_log_spaced_frequencies():
    loud, quiet = log_spectrogram(tone(440, 1.0)), log_spectrogram(tone(440, 0.1))
    assert -3 < loud.db.max() <= 0.5  # a full-scale sine reads about 0 dB
    assert loud.db.max() - quiet.db.max() == pytest.approx(20, abs=0.5)  # a tenth of the amplitude: -20 dB
    assert abs(loud.freqs_hz[loud.db.mean(axis=1).argmax()] / 440 - 1) < 0.03
    ratios = loud.freqs_hz[1:] / loud.freqs_hz[:-1]
    assert np.allclose(ratios, ratios[0])  # equal steps in log frequency
    assert loud.freqs_hz[0] >= 40 and loud.freqs_hz[-1] <= RATE / 2 and loud.duration_s == pytest.approx(1.0)
    long = log_spectrogram(tone(seconds=30.0))
    assert long.db.shape[1] <= 640  # a long clip is averaged down to a small image


def test_the_figure_has_a_time_axis_a_log_frequency_axis_and_a_db_colour_bar():
    spec = log_spectrogram(tone(440, 0.5, seconds=4.0))
    db_range = shared_db_range([spec])
    svg = spectrogram_svg(spec, db_range)
    (plot_attrs, plot), (bar_attrs, bar) = images_of(svg)
    bare = decode_png(spectrogram_png(spec, db_range))
    assert np.array_equal(plot, bare)  # the axes go around the bare image, not into it
    _, _, width, height = map(float, ET.fromstring(svg).get("viewBox").split())
    assert float(plot_attrs["width"]) < width - 80 and float(plot_attrs["height"]) < height - 30  # room for axes
    texts = [t.text for t in ET.fromstring(svg).iter(f"{SVG}text")]
    assert {"time (s)", "frequency (Hz, log)", "dB"} <= set(texts)
    assert {"0", "1", "2", "3", "4"} <= set(texts)  # seconds
    assert {"50", "100", "500", "1k", "5k", "10k"} <= set(texts)  # Hz, log-spaced ticks
    assert {"-20", "-40", "-60", "-80"} <= set(texts)  # dB on the colour bar
    hz_ticks = {t.text: float(t.get("y")) for t in ET.fromstring(svg).iter(f"{SVG}text")
                if t.get("text-anchor") == "end" and t.text in ("100", "1k", "10k")}  # the frequency axis's labels
    assert hz_ticks["100"] - hz_ticks["1k"] == pytest.approx(hz_ticks["1k"] - hz_ticks["10k"], abs=0.2)  # log axis
    assert bar.shape[1] == 1 and bar[0].mean() > bar[-1].mean()  # bright (loud) at the top of the bar
    row_of_440 = int(np.argmin(np.abs(spec.freqs_hz[::-1] - 440)))
    assert plot[row_of_440].mean() > plot.mean() + 40  # the tone is the bright row, low frequencies at the bottom


def test_clips_shown_together_share_one_colour_scale():
    loud, quiet = tone(440, 0.9), tone(440, 0.02)
    svgs, db_range = spectrogram_svgs([loud, quiet])
    alone = [shared_db_range([log_spectrogram(c)]) for c in (loud, quiet)]
    assert alone[0] != alone[1] and db_range == alone[0]  # apart they would differ: together, the louder one's
    assert all(f"data-db-range='{db_range[0]:g} {db_range[1]:g}'" in svg for svg in svgs)
    loud_px, quiet_px = (images_of(svg)[0][1] for svg in svgs)
    assert quiet_px.sum(axis=2).max() < loud_px.sum(axis=2).max() - 200  # the quiet clip looks darker
    assert np.array_equal(images_of(svgs[0])[1][1], images_of(svgs[1])[1][1])  # one colour bar


def test_the_comparer_draws_original_and_steered_on_one_scale():
    cmp = ClipComparer()
    cmp.compare(tone(220, 0.9), tone(440, 0.02))
    assert cmp.db_range == shared_db_range([log_spectrogram(tone(220, 0.9))])
    shown = [col.children[2].value for col in cmp.columns]
    assert all(f"data-db-range='{cmp.db_range[0]:g} {cmp.db_range[1]:g}'" in svg and "time (s)" in svg
               for svg in shown)
    static = cmp._repr_mimebundle_()["text/html"]
    assert static.count("data:image/svg+xml;base64,") == 2
    pictures = [base64.b64decode(src).decode() for src in re.findall(r"data:image/svg\+xml;base64,([^']+)", static)]
    assert all("frequency (Hz, log)" in svg and f"{cmp.db_range[0]:g} " in svg for svg in pictures)


def test_a_span_is_shaded_and_odd_clips_still_render():
    svgs, _ = spectrogram_svgs([tone(seconds=2.0), (np.zeros(100, np.float32), 8000),
                                (np.stack([tone()[0], tone()[0]]), RATE)], spans_s=[(0.5, 1.0), None, None])
    span = re.search(r"<rect x='([\d.]+)' y='\d+' width='([\d.]+)'[^>]*fill='#50ffa0'", svgs[0])
    image = images_of(svgs[0])[0][0]
    left, plot_width = float(image["x"]), float(image["width"])
    assert float(span.group(1)) == pytest.approx(left + plot_width / 4, abs=0.2)
    assert float(span.group(2)) == pytest.approx(plot_width / 4, abs=0.2)
    assert "fill='#50ffa0'" not in svgs[1] and all(images_of(svg) for svg in svgs)  # silence, stereo
