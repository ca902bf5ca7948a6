"""The demo's model specs (``data/model_specs/*.yaml``, landed as ``raw/model_specs/<spec_id>.yaml``)
and the run config a fast demo or test gives trained_models over them.

    land_specs(store)                       # the four specs in the raw zone
    register_spec_files(instance, store)    # as the model_spec_sensor would (defs/models/specs.py)
    dg.materialize([...], partition_key=PORTLAND_SPEC, run_config=fast_train_config(PORTLAND_SPEC))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from snoiq_assets.lib.models.specs import spec_key
from snoiq_assets.lib.storage import ObjectStore

SPECS_DIR = Path(__file__).resolve().parents[3] / "data" / "model_specs"

PORTLAND_SPEC = "portland_precip_daily"  # GSOD Portland: daily precipitation, station features
PORTLAND_STATION = "72698024229"
HOURLY_SPEC = "nunn_air_temp_hourly"     # USCRN Nunn: hourly air temperature from grid-join features
HOURLY_STATION = "94074"
ROAD_WEATHER_SPECS = ("rwis_air_temp", "rwis_pavement_temp")  # INDOT: leads 1-18 from HRRR point forecasts
ROAD_WEATHER_LOCATION = "indot_rwis"
DEMO_SPECS = (PORTLAND_SPEC, HOURLY_SPEC, *ROAD_WEATHER_SPECS)


def spec_text(spec_id: str) -> bytes:
    return (SPECS_DIR / f"{spec_id}.yaml").read_bytes()


def land_specs(store: ObjectStore, spec_ids=DEMO_SPECS) -> list[str]:
    """Put the demo's spec files in the raw zone (what a user does to add a spec)."""
    for spec_id in spec_ids:
        store.put(spec_key(spec_id), spec_text(spec_id))
    return list(spec_ids)


def fast_train_config(spec_id: str, fast: bool = True) -> dict[str, Any]:
    """trained_models' run config for a quick run (the test suite's end-to-end demo): fewer trees
    and folds for the small daily and hourly specs; for the road-weather specs (145,000 rows
    each) only LightGBM, at the spec's own size (the promotion must stand on the spec's model;
    XGBoost and the random forest take about 4x and 10x as long there)."""
    if not fast:
        return {}
    if spec_id in ROAD_WEATHER_SPECS:
        return {"ops": {"trained_models": {"config": {"model_types": ["lightgbm"]}}}}
    hp = {"n_estimators": 60} if spec_id == PORTLAND_SPEC else {"n_estimators": 40, "max_depth": 3}
    return {"ops": {"trained_models": {"config": {"hyperparameters": hp, "cv_folds": 2}}}}
