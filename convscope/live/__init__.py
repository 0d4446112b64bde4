"""The creative tools (ml4a-ofx's ConvnetViewer and ConvnetOSC): per-frame features of any layer
(:mod:`convscope.live.features`), OSC out (:mod:`convscope.live.osc`) and the headless stream of
``convscope stream`` (:mod:`convscope.live.stream`); train your own classes and sliders
(:mod:`convscope.live.teacher`, :mod:`convscope.live.examples`, :mod:`convscope.live.learners`).

Importing this package needs only the core; python-osc and OpenCV (``pip install
"convscope[osc]"``) are imported when a stream or a sender starts."""

from .examples import ExampleSet, Head, Output  # train your own
from .features import DEFAULT_MODEL, PROBS, FeatureError, FeatureExtractor, default_model
from .learners import ease
from .osc import CLASSIFICATION, OUTPUTS, WEKINATOR_INPUTS, OscError, OscSender, OscTarget
from .teacher import Teacher

__all__ = ["CLASSIFICATION", "DEFAULT_MODEL", "OUTPUTS", "PROBS", "WEKINATOR_INPUTS",
           "FeatureError", "FeatureExtractor", "OscError", "OscSender", "OscTarget",
           "default_model", "ExampleSet", "Head", "Output", "Teacher", "ease"]
