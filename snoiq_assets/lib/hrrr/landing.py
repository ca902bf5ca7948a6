"""Landing one HRRR hour in the raw zone: take a file that already landed (after checking it),
or fetch the selected messages by ``.idx`` byte ranges from the first source that has them."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from snoiq_assets.lib.checksums import sha256_file
from snoiq_assets.lib.hours import hour_of
from snoiq_assets.lib.hrrr.decode import find_messages, gunzip_grib, idx_text, parse_and_check_idx, scan_grib
from snoiq_assets.lib.hrrr.fetch import fetch_subset, hrrr_key
from snoiq_assets.lib.hrrr.rawkeys import gzip_key, idx_key, landing_key
from snoiq_assets.lib.hrrr.variables import search_pattern
from snoiq_assets.lib.storage import ObjectStore


def land_partition(store: ObjectStore, partition_key: str, forecast_hour: int, variables: Sequence,
                   sources: Callable[[], list]) -> dict:
    """Land (or validate the already-landed) GRIB of one hourly partition; return its metadata.

    ``sources`` is called only when something must be fetched; a landed ``.grib2.gz`` is first
    decompressed beside it (the compressed file stays). Raises ``HrrrDataError`` for a bad landed
    file (the caller quarantines it: the GRIB, or the ``.gz`` when it would not decompress) and
    ``FetchError`` when no source could provide a valid subset (nothing is landed then).
    """
    run_time = hour_of(partition_key)
    key = landing_key(run_time, forecast_hour)
    idx = idx_key(key)
    gunzipped = {}
    if not store.exists(key) and store.exists(gzip_key(key)):   # landed gzip-compressed: decompress beside it
        with store.local_path(gzip_key(key)) as src, store.atomic_local_file(key) as dest:
            gunzipped = {"decompressed_from": gzip_key(key), "compressed_bytes": src.stat().st_size,
                         "decompressed_bytes": gunzip_grib(src, dest, gzip_key(key))}
    if store.exists(key):
        with store.local_path(key) as path:
            messages = scan_grib(path, key)
            wrote_idx = not store.exists(idx)
            if not wrote_idx:
                parse_and_check_idx(store.get(idx).decode(), messages, key)
            find_messages(messages, variables, forecast_hour, key, run_time)
            size, digest = path.stat().st_size, sha256_file(path)
        if wrote_idx:
            store.put(idx, idx_text(messages).encode())
        meta = {"source": "landed", "byte_ranges": [], "idx_written": wrote_idx, **gunzipped}
    else:
        remote = hrrr_key(run_time, forecast_hour)
        pattern = search_pattern(variables, forecast_hour)

        def validate(path: Path, idx_body: str) -> None:
            msgs = scan_grib(path, f"{remote} (fetched)")
            parse_and_check_idx(idx_body, msgs, f"{remote} (fetched)")
            find_messages(msgs, variables, forecast_hour, f"{remote} (fetched)", run_time)

        with store.atomic_local_file(key) as path:
            result = fetch_subset(sources(), remote, pattern, path, validate=validate)
        store.put(idx, result.idx_text.encode())
        size, digest = result.size, result.sha256
        meta = {
            "source": result.source,
            "source_url": result.url,
            "byte_ranges": result.range_headers,
            "range_requests": len(result.ranges),
            "messages": result.idx_text.count("\n"),
            "fallback_errors": result.errors,
        }
    return {**meta, "key": key, "uri": store.uri(key), "size_bytes": size, "sha256": digest}
