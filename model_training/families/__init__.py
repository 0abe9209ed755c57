"""One trainer module per model family (the fitted models are in :mod:`model_bundle.families`);
:mod:`model_training.forecasters` registers them."""
