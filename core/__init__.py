"""The base layer: settings, the dataset config and the names it implies, the source policy, atomic
files, partitions and time windows.

Every other package of the platform builds on this one, and it imports none of them (an import-linter
contract holds it so): what is here is what all of them must agree on.
"""
