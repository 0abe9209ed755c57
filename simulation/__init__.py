"""A simulation of the daily loop (``make simulate``): consecutive days of a dataset replayed through
the platform's own DAGs, in order, each day revealing one more day of the raw source."""
