"""The stations domain: assets, checks, sensors and schedules, exposed as one `defs`."""

import dagster as dg

defs = dg.Definitions()
