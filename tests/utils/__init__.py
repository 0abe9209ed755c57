"""Helpers that tests import: synthetic data, throwaway servers, the platform under test settings.

Fixtures live in ``tests/conftest.py``; these are plain functions and classes.
"""
