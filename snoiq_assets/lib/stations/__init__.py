"""Station observations and outcome series: parsing, the clean schema, validation, metadata.

Plain functions, no Dagster imports (the wiring is in ``snoiq_assets.defs.stations``).

Contract other domains rely on:

- ``formats.detect_format(data, file)`` recognises a file from its content (not its name):
  USCRN hourly02, USCRN daily01, NCEI GSOD CSV, IEM ASOS CSV, GHCN-Daily CDO CSV.
- ``parsers.parse_native(data, file, station_id)`` -> ``(Format, native frame)``: every field of
  the source in its own units (missing sentinels already null), plus ``line_no`` (1-based line
  in the file), ``parse_error`` (null, or "column X: why" for a line that could not be read) and
  ``source_format``. ``parsers.to_clean(native, fmt, station_id)`` converts to ``schema.CLEAN``.
- ``schema.CLEAN`` is the ordered ``{column: polars dtype}`` of ``observations_clean``;
  ``schema.REJECTS`` is that of every rejects table (observations and outcomes).
- ``validate.validate(frame, claimed_period=...)`` -> ``(clean, rejects)``: range rules in SI,
  consistency (min <= mean <= max), duplicate and out-of-order timestamps, QC flags, claimed
  period. A failing value is nulled (or its row dropped) and recorded in the rejects.
- ``metadata.build_station_metadata(...)`` -> one row per station (``schema.METADATA``).
- ``outcomes.parse_outcome(data, file, location)`` / ``outcomes.validate_outcome(...)``.
- ``rawkeys.partition_for_raw_key(key)`` maps ``raw/observations/<station_id>.csv|txt`` (or
  ``raw/outcomes/<location>.csv|parquet``) to a validated partition key, refusing unsafe names.
"""
