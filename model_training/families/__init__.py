"""One module per model family; :mod:`model_training.forecasters` registers them."""
