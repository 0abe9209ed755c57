"""Data only: the dataset configs (``datasets/*.yaml``) and benchmark protocols (``benchmarks/*.yaml``).

A package so that the YAML files install with the project (an image finds the default dataset
config next to the code); the code that reads them is :mod:`core.dataset`.
"""
