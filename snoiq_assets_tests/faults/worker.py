"""A step worker that is killed at a named point (run by ``harness.run_killed``).

``python -m snoiq_assets_tests.faults.worker <scenario> '{"point": ..., "nth": ...}'`` with the
settings and ``DAGSTER_HOME`` in the environment: materialises the scenario's assets on that
instance through the faulty store, which SIGKILLs this process when the point is reached.
"""

import pyproj  # noqa: F401  isort: skip  (before eccodes, see conftest.py)

import json
import sys

import dagster as dg

from snoiq_assets.defs.resources import build_resources
from snoiq_assets.settings import Settings
from snoiq_assets_tests.faults import harness
from snoiq_assets_tests.faults.scenarios import SCENARIOS
from snoiq_assets_tests.helpers import failure_messages


def main() -> int:
    scenario, fault = sys.argv[1], json.loads(sys.argv[2])
    resources = harness.faulty_resources(build_resources(Settings.from_env()))
    harness.arm(fault["point"], harness.kill_self, nth=fault["nth"])
    assets, kwargs = SCENARIOS[scenario]()
    with dg.DagsterInstance.get() as instance:
        result = dg.materialize(assets, resources=resources, instance=instance, raise_on_error=False, **kwargs)
    print("fault point not reached; run success:", result.success)
    if not result.success:   # what failed, first (the caller shows stdout in full)
        print(failure_messages(result)[:6000])
    return 3


if __name__ == "__main__":
    sys.exit(main())
