"""One module per measurement of ``fleetpulse bench``; each ``run(ctx)`` returns its section
dict for :mod:`bench.report` (``status`` "ok", or "not measured" with a ``reason``)."""
