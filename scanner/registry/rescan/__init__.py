"""Scheduled re-scans of a registry: `plan` decides which versions need a new scan (from their tags alone), `driver`
runs a re-scan and summarises what changed, `job` is one version's scan as an executor runs it, and `executors` run
the jobs here or on a Ray cluster."""
