"""The M4 competition's Hourly and Weekly series (``data/m4/``), scored by the competition's rules.

:mod:`.data` reads the organizers' files (one row per series, no timestamps) and the published rows
beside them; :mod:`.metrics` is M4's scoring: sMAPE and MASE per series, averaged over a frequency's
series, OWA against Naive2 computed in the same run, and MSIS and ACD of the 95 % intervals.
"""
