"""`fleetpulse bench`: the whole system measured the way an operator would judge it.

``bench.cli`` is the command; ``bench.sections`` holds one module per measurement
(throughput and peers, profile, the live run for freshness / alerts / memory, fan-out,
scaling); ``bench.peers`` the plain-Python and Quix Streams peers; ``bench.jobs`` cuts of the
tracking job for profiling; ``bench.report`` the pure report, JSON and chart code.
Three standalone scripts: ``python -m bench.compare`` (the tracking job of another revision
against this checkout, same run), ``python -m bench.delay_job`` (the delay job's sustained
rate and deadline-to-alert latency) and ``python -m bench.gateway_micro`` (the gateway's
routing and flush pass without sockets).
"""
