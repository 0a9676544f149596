"""Rate limits, budgets and prices: admission that holds across every instance (docs/limits.md).

Layers, lowest first: `windows` (fixed UTC windows), `counters` (the shared counter store interface and
its implementations), `leases` (each instance's local share of a bucket, refilled in the background),
`tokens` (what a request reserves), `prices` (what tokens cost), `rules` (which rules and buckets a
request meets), `admission` (admit, refuse or settle one request).
"""
