"""The benchmark of slackonos_telemetry: `python -m bench.run [--quick] [--json PATH]`."""
