"""The project's measuring instrument: the service against same-run baselines.

    python -m loadtests [--smoke] [--only w0,w1,...] [--out DIR] [--no-docs] [--no-profile]

W0 calibration (PostgreSQL commit, Redis PUBLISH, a bare `websockets` server), W1 idle memory per
connection, W2 chat across two gateways (fixed rate, then the sustained maximum), W3 bulk sends
to 10,000 connected parents, W4 a reconnection storm of 5,000, W5 locks under load; each against
the `websockets` floor and the same architecture built from generic parts (Starlette +
encode/broadcaster, no persistence), alternating. Everything a run needs (a durable PostgreSQL,
Redis, gateway, baseline and client processes) is started in fresh folders under /tmp and
stopped at the end, also on failure. See docs/performance.md for what each figure means and how
to read it.
"""
