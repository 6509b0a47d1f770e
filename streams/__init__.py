"""The Kafka side of driftrec: settings, wire records, the Faust app, its agents and the CLI.

Importing this package imports no Faust; `streams.app` and `streams.worker` do.
"""
