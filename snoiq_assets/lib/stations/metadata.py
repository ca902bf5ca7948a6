"""Station metadata from three sources, one row per station (``schema.METADATA``).

1. USCRN ``stations.tsv`` (NCEI): every row is kept. The id is the WBAN number (digits after
   any "NN:" prefix) where the row has one, as the observation files name their station; the
   15 rows of the 2020 list without one (WBAN ``UN`` or ``NA``: test sites such as Sterling VA,
   Oakridge TN, one of the two Gustavus AK rows) take ``uscrn-<STATION_ID>``, NCEI's own id,
   which every row has and which cannot collide with a five-digit WBAN. ``wban`` keeps the WBAN
   (null where absent). Name from LOCATION + VECTOR + NAME, lat/lon, ELEVATION in feet
   (converted to metres; ``UN`` is null), NETWORK, STATE, COMMISSIONING / CLOSING as the active
   period.
2. Coordinates inside GSOD files (LATITUDE, LONGITUDE, ELEVATION in metres, NAME), the active
   period being the file's first and last DATE.
3. A user-extendable CSV (``data/sample/station_metadata_extra.csv``) for stations whose files
   carry no coordinates (ASOS, GHCN-Daily CDO): columns station_id, name, latitude, longitude,
   elevation_m, network, state, begin_date, end_date (extra columns ignored).

4. The road-weather site list (``road_weather/rwis_sites.csv``): site, name, lat, lon for the
   INDOT stations (no station elevation in the source: ``hrrr_model_terrain_m`` is the model's).

Precedence: the extra file overrides GSOD, which overrides stations.tsv, field by field (a
null in a higher-precedence row does not erase a known value).
"""

from __future__ import annotations

import io

import polars as pl

from snoiq_assets.lib.stations import schema
from snoiq_assets.lib.stations.formats import StationFileError, decode_utf8
from snoiq_assets.lib.units import FOOT_M



def from_uscrn_stations(data: bytes, file: str = "stations.tsv") -> pl.DataFrame:
    text = decode_utf8(data, file)
    df = pl.read_csv(io.StringIO(text).read().encode(), separator="\t", infer_schema=False, quote_char=None)
    need = {"WBAN", "STATE", "LOCATION", "VECTOR", "NAME", "LATITUDE", "LONGITUDE", "ELEVATION", "NETWORK",
            "STATION_ID"}
    missing = need - set(df.columns)
    if missing:
        raise StationFileError(file, f"stations.tsv lacks columns {sorted(missing)}", line=1)
    ncei_id = pl.col("STATION_ID").str.strip_chars()
    bad = df.with_row_index("line", offset=2).filter(ncei_id.is_null() | ~ncei_id.str.contains(r"^[0-9A-Za-z]+$"))
    if bad.height:
        raise StationFileError(file, f"STATION_ID {bad['STATION_ID'][0]!r} is not an alphanumeric id",
                               line=int(bad["line"][0]), column="STATION_ID")
    wban_text = pl.col("WBAN").str.split(":").list.last().str.strip_chars()
    wban = pl.when(wban_text.str.contains(r"^\d{5}$")).then(wban_text)
    return schema.conform(
        df.select(
            pl.coalesce(wban, pl.lit("uscrn-") + ncei_id).alias("station_id"),
            wban.alias("wban"),
            pl.concat_str([pl.col("LOCATION"), pl.col("VECTOR"), pl.col("NAME")], separator=" ", ignore_nulls=True)
            .str.strip_chars().alias("name"),
            pl.col("LATITUDE").cast(pl.Float64, strict=False).alias("latitude"),
            pl.col("LONGITUDE").cast(pl.Float64, strict=False).alias("longitude"),
            (pl.col("ELEVATION").cast(pl.Float64, strict=False) * FOOT_M).round(1).alias("elevation_m"),
            pl.col("NETWORK").alias("network"),
            pl.col("STATE").alias("state"),
            pl.col("COMMISSIONING").str.slice(0, 10).str.strptime(pl.Date, "%Y-%m-%d", strict=False).alias("begin_date"),
            pl.col("CLOSING").str.slice(0, 10).str.strptime(pl.Date, "%Y-%m-%d", strict=False).alias("end_date"),
            pl.lit("uscrn_stations").alias("source"),
        ),
        schema.METADATA,
    )


def from_gsod_native(native: pl.DataFrame, station_id: str) -> pl.DataFrame:
    """One row from a parsed GSOD file (``parsers.parse_gsod``)."""
    ok = native.filter(pl.col("parse_error").is_null())
    name = ok["name"].drop_nulls()
    nm = name[0] if name.len() else None
    state = nm.split(",")[-1].strip().split(" ")[0] if nm and "," in nm else None
    return schema.conform(
        pl.DataFrame({
            "station_id": [station_id],
            "name": [nm.split(",")[0].strip() if nm else None],
            "latitude": [ok["latitude"].drop_nulls().median()],
            "longitude": [ok["longitude"].drop_nulls().median()],
            "elevation_m": [ok["elevation"].drop_nulls().median()],
            "network": ["GSOD"],
            "state": [state],
            "begin_date": [ok["date"].min()],
            "end_date": [ok["date"].max()],
            "source": ["gsod_file"],
        }),
        schema.METADATA,
    )


def from_extra_csv(data: bytes, file: str = "station_metadata_extra.csv") -> pl.DataFrame:
    from snoiq_assets.lib.keys import safe_identifier

    text = decode_utf8(data, file)
    df = pl.read_csv(text.encode(), infer_schema=False)
    need = {"station_id", "latitude", "longitude"}
    if need - set(df.columns):
        raise StationFileError(file, f"needs columns {sorted(need)}; has {df.columns}", line=1)
    for i, sid in enumerate(df["station_id"].to_list(), start=2):
        try:
            safe_identifier(sid or "", "station id")
        except ValueError as exc:
            raise StationFileError(file, str(exc), line=i, column="station_id") from None
    out = df.with_columns(
        *[pl.col(c).cast(pl.Float64, strict=False) for c in ("latitude", "longitude", "elevation_m") if c in df.columns],
        *[pl.col(c).str.strptime(pl.Date, "%Y-%m-%d", strict=False) for c in ("begin_date", "end_date") if c in df.columns],
        pl.lit("extra").alias("source"),
    )
    bad = out.filter(~pl.col("latitude").is_between(-90, 90) | ~pl.col("longitude").is_between(-180, 180)
                     | pl.col("latitude").is_null() | pl.col("longitude").is_null())
    if bad.height:
        raise StationFileError(file, f"station {bad['station_id'][0]!r} has no valid latitude/longitude", column="latitude")
    return schema.conform(out, schema.METADATA)


RWIS_SITE_COLUMNS = ("site", "name", "lat", "lon")


def from_rwis_sites(data: bytes, file: str = "rwis_sites.csv") -> pl.DataFrame:
    """INDOT road-weather stations: id = ``site`` (checked), network INDOT RWIS, state IN."""
    from snoiq_assets.lib.keys import safe_identifier

    df = pl.read_csv(decode_utf8(data, file).encode(), infer_schema=False)
    missing = [c for c in RWIS_SITE_COLUMNS if c not in df.columns]
    if missing:
        raise StationFileError(file, f"road-weather site list lacks column(s) {missing}; has {df.columns}", line=1)
    for i, row in enumerate(df.iter_rows(named=True), start=2):
        try:
            safe_identifier(row["site"] or "", "station id")
        except ValueError as exc:
            raise StationFileError(file, str(exc), line=i, column="site") from None
        lat, lon = (float(row[c]) if row[c] not in (None, "") else float("nan") for c in ("lat", "lon"))
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise StationFileError(file, f"site {row['site']!r} has no valid lat/lon ({row['lat']}, {row['lon']})",
                                   line=i, column="lat")
    return schema.conform(df.select(
        pl.col("site").alias("station_id"), pl.col("name"),
        pl.col("lat").cast(pl.Float64).alias("latitude"), pl.col("lon").cast(pl.Float64).alias("longitude"),
        pl.lit("INDOT RWIS").alias("network"), pl.lit("IN").alias("state"), pl.lit("rwis_sites").alias("source"),
    ), schema.METADATA)


def build_station_metadata(*frames: pl.DataFrame) -> pl.DataFrame:
    """Merge frames given lowest precedence first; one row per station_id, sorted."""
    frames = [schema.conform(f, schema.METADATA) for f in frames if f is not None and f.height]
    if not frames:
        return schema.empty(schema.METADATA)
    ranked = pl.concat([f.with_columns(pl.lit(i).alias("_rank")) for i, f in enumerate(frames)])
    cols = [c for c in schema.METADATA if c != "station_id"]
    merged = (
        ranked.sort("_rank", descending=True)
        .group_by("station_id", maintain_order=True)
        .agg([pl.col(c).drop_nulls().first().alias(c) for c in cols])
    )
    return schema.conform(merged, schema.METADATA).sort("station_id")
