"""Load, latency and memory benchmarks against a bare Channels floor (``make bench``)."""
