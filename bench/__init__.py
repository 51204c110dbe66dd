"""An end-to-end benchmark of the gateway: `python -m bench.run [--quick]`.

It starts its own redis-server, the fake upstream, the gateway (1 and N workers) and a bare
aiohttp handler serving the gateway's own single-hit bytes (the framework's limit on this
machine), drives each from wrk in a separate process and prints one table. Never part of the
test suite.
"""
