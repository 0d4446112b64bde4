"""The explorer's HTTP API, one router per concern (docs/api.md): models (descriptions,
weights, activations, predictions, convolution steps, confusion), spoken digits, datasets and
the chapter's results, and live training. Each ``*_router(explorer)`` reads the shared
:class:`~convscope.server.routes.state.Explorer`."""
