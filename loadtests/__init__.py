"""Benchmarks of the messaging core: live chat latency and throughput, idle connection memory.

    python -m loadtests [--smoke] [--only chat|idle] [--out DIR]

Everything a run needs (a durable PostgreSQL, Redis, gateway processes, client processes) is
started in fresh folders under /tmp and stopped at the end, also on failure. See
docs/performance.md for what each figure means and how to read it.
"""
