"""What the benchmarks, the simulation and the tests share to drive real servers from outside: free
loopback ports and probes (:mod:`harness.net`), waiting for a condition with a deadline
(:mod:`harness.wait`), server processes started, awaited and stopped with their whole process group
(:mod:`harness.servers`), a local Ray cluster of separate processes (:mod:`harness.ray_cluster`),
many generated series written as a dataset (:mod:`harness.series`), and the one open-loop HTTP load
generator (:mod:`harness.load`).

It runs from a checkout, like ``benchmarks/`` and ``simulation/``, and is not installed with the
platform; it imports none of the platform's packages (an import-linter contract holds it to that), so
the tools above it share one copy of these parts instead of each keeping its own. Importing the
package costs nothing: each module imports what it needs (only :mod:`harness.load` needs aiohttp, only
:mod:`harness.series` pandas).
"""
