"""FeatureDashboard on a small store with a planted feature (no model): list, clips, play, steer, static."""
from __future__ import annotations

import io
import wave

import numpy as np
import pytest
import torch
from test_features import make_store

from widgets import SteeringPanel
from widgets._base import RefusedValueError
from widgets.feature_dashboard import FeatureDashboard, span_spectrogram_png, svg_histogram
from workbench.analysis.features import FrameStream, SparseAutoencoder, label_features

RATE = 8000


def clip_of(row):
    """A 1 s tone per store row (the store here keeps no audio)."""
    return (np.sin(2 * np.pi * (200 + 20 * row) * np.arange(RATE) / RATE).astype(np.float32) * 0.3, RATE)


@pytest.fixture
def labels(tmp_path):
    s = make_store(tmp_path, n_rows=8, frames=(20,))
    sae = SparseAutoencoder(8, 4, "standard")
    with torch.no_grad():  # feature 0 fires on label "b" clips, feature 1 follows tempo, 2-3 never fire
        sae.W_enc.zero_()
        sae.W_enc[0, 0] = 1.0
        sae.W_enc[1, 1] = 1.0
        sae.b_enc.copy_(torch.tensor([-2.0, 0.0, -100.0, -100.0]))
    return label_features(sae, FrameStream(s, "resid", 1))


def wav_seconds(blob: bytes) -> float:
    with wave.open(io.BytesIO(blob)) as f:
        return f.getnframes() / f.getframerate()


def test_list_filters_and_a_click_shows_the_feature(labels):
    dash = FeatureDashboard(labels, clip_fn=clip_of)
    assert dash.features[:2] == [0, 1] and len(dash.list_box.options) == 4
    dash.label_filter = "label=b"
    assert dash.features == [0] and [v for _, v in dash.list_box.options] == [0]
    dash.label_filter = ""
    dash.min_frequency = 0.01
    assert sorted(dash.features) == [0, 1]  # the dead features drop out
    dash.list_box.value = 0  # what a click in the list does
    assert dash.feature == 0 and len(dash.top) == 4 and all(c["label"] == "b" for c in dash.top)
    assert "<svg" in dash.histogram.value and "auroc:label=b" in dash.assoc.value
    assert len(dash.clips_box.children) == 4 and not dash.steer_button.disabled


def test_play_starts_at_the_span_and_steer_sends_the_decoder_row(labels):
    panel = SteeringPanel(n_layers=4, generate_fn=lambda req, on_progress, should_stop: clip_of(0))
    sent = []
    dash = FeatureDashboard(labels, model_id="m", clip_fn=clip_of, on_steer=sent.append).link(panel)
    dash.feature = 1
    top = dash.top[0]
    dash.play(0)
    start = max(0.0, top["start_s"] - 0.25)
    assert dash.playing == dict(row=top["row"], feature=1, start_s=start)
    assert wav_seconds(dash.player.value) == pytest.approx(1.0 - start, abs=1e-3)
    direction = dash.steer()
    assert sent == [direction] and panel.direction is direction and panel.layers == [1]
    np.testing.assert_allclose(direction.vector, labels.sae.decoder_row(1) / np.linalg.norm(labels.sae.decoder_row(1)))
    assert direction.model_id == "m" and direction.provenance["feature"] == 1


def test_bad_values_are_refused_in_the_view(labels):
    dash = FeatureDashboard(labels, clip_fn=clip_of)
    with pytest.raises(RefusedValueError, match="out of range: this SAE has 4 features"):
        dash.feature = 9
    assert dash.feature == -1 and "out of range" in dash.last_error
    with pytest.raises(RefusedValueError, match="no feature chosen"):
        dash.steer()
    dash.feature = 0
    dash.play(7)  # a callback error lands in the view, not in the void
    assert "top clip 7 does not exist" in dash.last_error


def test_static_fallback_shows_list_histogram_spans_and_players(labels):
    dash = FeatureDashboard(labels, clip_fn=clip_of)
    dash.feature = 0
    bundle = dash._repr_mimebundle_()
    page = bundle["text/html"]
    assert "SAE features" in page and "<svg" in page and page.count("<audio") == 4 and "span" in page
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_span_is_marked_on_the_spectrogram():
    clip = clip_of(0)
    plain, marked = span_spectrogram_png(clip, 0.0, 0.0), span_spectrogram_png(clip, 0.4, 0.6)
    assert plain != marked and marked.startswith(b"\x89PNG")
    assert svg_histogram(np.linspace(0, 1, 4), [1, 0, 5]).count("<rect") == 3


def test_workbench_add_features_links_the_dashboard_to_its_panel(labels):
    from test_widgets import FakeBackend

    from widgets import Workbench
    ui = Workbench.from_backend(FakeBackend(), prompts_by_label={"rock": "rock music"})
    dash = ui.add_features(labels, clip_fn=clip_of)
    assert dash in ui.children and ui.children[-1] is ui.errors and ui.features is dash
    dash.feature = 0
    direction = dash.steer()
    assert ui.panel.direction is direction and ui.panel.layers == [1] and ui.direction is direction
