"""The explanation methods, named once: each one's name, label, what its map shows and whether
it reads a layer's maps. :mod:`convscope.explain` computes them; the CLI's ``--method``, the
API's method list and the explorer's panel all list them from here (torch-free, so the CLI
starts fast)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    name: str
    label: str
    what: str  # what the map shows, for a caption
    reads_layer: bool  # it weighs a chosen layer's maps (needs a layer with maps)

    def to_dict(self) -> dict:
        return {"method": self.name, "label": self.label, "what": self.what,
                "layer": self.reads_layer}


ALL = (
    Method("gradcam", "Grad-CAM", "the chosen layer's maps, weighted by how much the class's "
           "score grows with each", True),
    Method("hirescam", "HiResCAM", "the chosen layer's maps times how much the class's score "
           "grows with each of their values", True),
    Method("saliency", "saliency (SmoothGrad)", "how strongly each pixel moves the class's "
           "score (gradient, averaged over noisy copies)", False),
    Method("occlusion", "occlusion", "how much the class's score drops when a small square "
           "there is covered", False),
)
BY_NAME = {m.name: m for m in ALL}
METHODS = tuple(BY_NAME)
LAYER_METHODS = tuple(m.name for m in ALL if m.reads_layer)
