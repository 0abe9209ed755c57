"""One module per model family's fitted model; :mod:`model_bundle.forecasters` registers them."""
