"""The ``make bench-*`` tools: accuracy, training speed, serving latency (with its floor), load
generator and soak. They drive the platform from outside, as a user would; nothing of the runtime
imports them, and they are not installed with the project (run them from a checkout)."""
