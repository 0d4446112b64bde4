"""``convscope stream``: the command line's side of :mod:`convscope.live.stream`."""

from __future__ import annotations

import argparse
import sys

from ..errors import ConvscopeError
from ..layer_kinds import Volume
from .features import FeatureExtractor, default_model
from .osc import WEKINATOR_INPUTS, OscSender, check_value_count
from .stream import open_source, run_stream
from .teacher import head_stream


def parse_volume(text: str) -> Volume:
    """``"224x224x3"`` (width x height x depth) as a Volume."""
    parts = text.lower().replace(",", "x").split("x")
    if len(parts) != 3 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise ConvscopeError(f"--input {text!r} is not WxHxD: give e.g. 224x224x3")
    return Volume(*(int(p) for p in parts))


def stream_command(args: argparse.Namespace) -> None:
    """Stream ``args.source``'s frames' features to ``args.osc`` until it ends, ``--frames``
    are sent or Ctrl-C; one line on stderr before and after."""
    if args.frames is not None and args.frames < 1:
        raise ConvscopeError(f"--frames must be at least 1, got {args.frames}")
    if args.fps is not None and not args.fps > 0:
        raise ConvscopeError(f"--fps must be above 0, got {args.fps}")
    if args.head:  # a trained head's outputs (convscope.live.teacher) instead of features
        extractor, target, sending = head_stream(args.head, args.model, args.osc, args.address,
                                                 args.trust_code)
    else:
        target = WEKINATOR_INPUTS.with_(args.osc, args.address)
        volume = parse_volume(args.input) if args.input else None
        extractor = FeatureExtractor.open(args.model, args.layer, trust_code=args.trust_code,
                                          volume=volume, invert=args.invert)
        check_value_count(extractor.size, f"layer {extractor.layer_name}")
    frames = open_source(args.source)
    with OscSender(target) as sender:
        model = args.model or default_model()
        what = (f"the predictions of {args.head} (on {extractor.layer_name} of {model}; "
                if args.head else f"{extractor.layer_name} of {model} ({extractor.size} float32 "
                "values a frame; ")
        print(f"streaming {what}the network sees a {extractor.volume} view of each frame) to "
              f"{target}; Ctrl-C stops", file=sys.stderr)
        send = sending(sender) if args.head else sender.send_floats
        count = run_stream(frames, extractor, send, args.frames, args.fps)
        failed = (f"; {sender.failures} could not be sent ({sender.last_error})"
                  if sender.failures else "")
        rate = count.frames / count.seconds if count.seconds else 0.0
        print(f"sent {sender.sent} messages to {target} from {count.frames} frames "
              f"({rate:.1f} frames/s){failed}", file=sys.stderr)
