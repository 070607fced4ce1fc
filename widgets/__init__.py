"""Notebook views on the workbench: each works alone and from code; `Workbench` links them all.

    >>> from widgets import Workbench
    >>> ui = Workbench.from_model()   # the teaching model; display `ui` in a cell   # doctest: +SKIP

Views only: the work (generation, directions, projections, scores) is done by `workbench`, through
`widgets.backend.Backend`, which takes typed requests (`SteerRequest`, `DirectionRequest`). No torch
import here.
"""
from .app import Workbench
from .backend import Backend, Collection
from .clip_compare import ClipComparer
from .direction_picker import DirectionPicker
from .evaluation_view import EvaluationView
from .feature_dashboard import FeatureDashboard
from .listening_test import ListeningTest
from .patching_view import PatchingView
from .projection_view import ProjectionExplorer
from .requests import DirectionRequest, SteerRequest
from .seek_player import SeekPlayer
from .steering_panel import SteeringPanel
from .sweep_view import LayerSweepView
from .trace_view import TraceView

__all__ = ["Backend", "ClipComparer", "Collection", "DirectionPicker", "DirectionRequest", "LayerSweepView",
           "PatchingView", "ProjectionExplorer", "SeekPlayer", "SteerRequest", "SteeringPanel", "TraceView",
           "Workbench", "FeatureDashboard", "EvaluationView", "ListeningTest"]
