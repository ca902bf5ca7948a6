"""The code location the sensor crash test loads: the station landing sensor, the station assets
it targets and the resources, from the environment (like the real one, smaller to load)."""

from dagster import Definitions

from snoiq_assets.defs.automation.sensors import station_file_landing_sensor
from snoiq_assets.defs.resources import build_resources
from snoiq_assets.defs.stations import defs as stations
from snoiq_assets.settings import Settings

defs = Definitions.merge(stations, Definitions(sensors=[station_file_landing_sensor],
                                               resources=build_resources(Settings.from_env())))
