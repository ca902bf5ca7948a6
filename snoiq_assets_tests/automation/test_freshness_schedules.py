"""Freshness: one rule per asset (a policy, or for an hourly asset a partition freshness check);
the hourly freshness check fails when the latest cycle is missing and passes once it is
materialised. Schedules: a real tick."""

import datetime as dt
import tempfile
from pathlib import Path

import dagster as dg
import pytest

from snoiq_assets.defs.automation.freshness import HOURLY_ASSETS
from snoiq_assets.defs.resources import build_resources
from snoiq_assets.settings import Settings
from snoiq_assets_tests.helpers import location_assets

UTC = dt.timezone.utc


@pytest.fixture(scope="module")
def defs():
    from snoiq_assets.definitions import defs

    return defs


@pytest.fixture
def local_resources(tmp_path):
    return build_resources(Settings.from_env({"SNOIQ_HOME": str(tmp_path / "home")}))


def test_one_freshness_rule_per_asset(defs):
    """Every hourly-partitioned asset has the partition freshness check and no policy (the asset
    page would show "Freshness policy: Passing" beside a failed check); every other asset has a
    policy and no such check."""
    from snoiq_assets.defs.partitions import hourly_partitions

    graph = defs.resolve_asset_graph()
    keys = sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string())
    hourly = [k.to_user_string() for k in keys if graph.get(k).partitions_def == hourly_partitions]
    assert sorted(HOURLY_ASSETS) == hourly
    checked = {ck.asset_key.to_user_string() for c in defs.asset_checks for ck in c.check_keys
               if "freshness" in ck.name}
    assert checked == set(HOURLY_ASSETS)
    for key in keys:
        policy = graph.get(key).freshness_policy
        if key.to_user_string() in HOURLY_ASSETS:
            assert policy is None, key
        else:
            assert policy is not None, key
    assert graph.get(dg.AssetKey("training_table")).freshness_policy.fail_window.to_timedelta() == dt.timedelta(days=8)


def expected_partition(now: dt.datetime) -> str:
    """The hourly partition the check requires at ``now`` (deadline cron at minute 30)."""
    tick = now.replace(minute=30, second=0, microsecond=0)
    if tick > now:
        tick -= dt.timedelta(hours=1)
    return (tick.replace(minute=0) - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H")


def check_result(result, asset: str):
    evals = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    return next(ev for ev in evals if ev.asset_key == dg.AssetKey(asset))


def test_hourly_freshness_check_fails_when_stale_then_passes(defs, local_resources, instance):
    from snoiq_assets.defs.hrrr.demo import seed_demo

    checks = dg.AssetSelection.checks_for_assets("hrrr_fields") & dg.AssetSelection.checks(
        *[ck for c in defs.asset_checks for ck in c.check_keys if "freshness" in ck.name])
    run = dg.materialize(location_assets(defs), selection=checks, resources=local_resources, instance=instance,
                         raise_on_error=False)
    stale = check_result(run, "hrrr_fields")
    assert stale.passed is False

    now = dt.datetime.now(UTC)
    partition = expected_partition(now)
    store = local_resources["store"].get_store()
    seed_demo(store, synth_partitions=(partition,))
    selection = {"leads": [0]}
    for assets, pk in ((["hrrr_raw"], partition), (["hrrr_grid"], None), (["hrrr_fields"], partition)):
        ok = dg.materialize(location_assets(defs), selection=assets, partition_key=pk, resources=local_resources,
                            instance=instance, run_config={"ops": {a: {"config": selection} for a in assets if a != "hrrr_grid"}})
        assert ok.success
    run = dg.materialize(location_assets(defs), selection=checks, resources=local_resources, instance=instance)
    assert check_result(run, "hrrr_fields").passed is True


def test_hourly_fetch_schedule_tick_requests_the_published_cycle(defs, instance, local_resources, tmp_path):
    schedule = defs.resolve_schedule_def("hrrr_hourly_fetch")
    assert schedule.cron_schedule == "55 * * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    when = dt.datetime(2023, 1, 1, 3, 55, tzinfo=UTC)
    store = local_resources["store"].get_store()
    # of the three cycles before, 01Z has f00-f17 landed (f18 not yet); 00Z and 23Z nothing
    from snoiq_assets.lib.hrrr.rawkeys import landing_key
    from snoiq_assets.lib.hrrr.synth import write_hrrr_hour
    from snoiq_assets.lib.hrrr.decode import idx_text, scan_grib

    run = dt.datetime(2023, 1, 1, 1, tzinfo=UTC)
    for fh in range(18):
        path = write_hrrr_hour(tmp_path / f"f{fh:02d}.grib2", run, fh, packing="grid_ccsds")
        store.put_file(landing_key(run, fh), path)
        store.put(landing_key(run, fh) + ".idx", idx_text(scan_grib(path)).encode())
    with dg.build_schedule_context(instance=instance, scheduled_execution_time=when,
                                   repository_def=defs.get_repository_def(),
                                   resources={"store": local_resources["store"]}) as ctx:
        data = schedule.evaluate_tick(ctx)
    reqs = {r.partition_key: r for r in data.run_requests}
    assert list(reqs) == ["2023-01-01T02", "2022-12-31T23", "2023-01-01T00", "2023-01-01T01"]
    # the newest cycle: every scheduled lead
    assert reqs["2023-01-01T02"].run_config["ops"]["hrrr_raw"]["config"] == {"leads": None}
    assert reqs["2023-01-01T00"].run_config["ops"]["hrrr_raw"]["config"] == {"leads": list(range(49))}
    assert reqs["2023-01-01T01"].run_config["ops"]["hrrr_fields"]["config"] == {"leads": [18]}
    assert reqs["2023-01-01T01"].tags["snoiq/retry_leads"] == "f18"


def test_daily_sweep_tick_registers_and_requests_every_station(defs, local_resources, instance, sample_dir):
    store = local_resources["store"].get_store()
    store.put_file("raw/observations/94074.txt", sample_dir / "uscrn" / "CRNH0203-2023-CO_Nunn_7_NNE.head48.txt")
    store.put_file("raw/observations/CLE.csv", sample_dir / "station_obs" / "iem_asos_CLE_2010-10.csv")
    schedule = defs.resolve_schedule_def("daily_cleaning_sweep")
    with dg.build_schedule_context(instance=instance, resources={"store": local_resources["store"]},
                                   scheduled_execution_time=dt.datetime(2024, 5, 1, 6, tzinfo=UTC),
                                   repository_def=defs.get_repository_def()) as ctx:
        data = schedule.evaluate_tick(ctx)
    assert sorted(r.partition_key for r in data.run_requests) == ["94074", "CLE"]
    assert {r.run_key for r in data.run_requests} == {"2024-05-01:94074", "2024-05-01:CLE"}
    assert sorted(instance.get_dynamic_partitions("station_files")) == ["94074", "CLE"]
