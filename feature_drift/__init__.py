"""How far features have moved: per entity, the newest window against the rows a model version was fit on
before it.

Below both users of the measurement: the drift gate of a promotion (:mod:`model_validation.drift`)
and the daily drift check of the champion (:mod:`monitoring.champion_drift`), which must not import
each other. The verdict types are in :mod:`feature_drift.outcomes` (no pandas, no Evidently), the
measurement in :mod:`feature_drift.measure`.
"""
