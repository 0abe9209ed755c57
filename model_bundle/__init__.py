"""The predict side of a model: what a registered model version carries and needs to forecast.

A registered bundle ships this package alone as its code: the families' fitted models (load, predict,
save), the preprocessor that travels with them and the MLflow PyFunc around them. It imports nothing
else of the platform and no training library (no fitting code, no PyTorch, no Optuna): an
import-linter contract holds it so. Fitting lives in :mod:`model_training`, whose trainers extend the
classes here.
"""
