"""`reproduce_job`: the reproduction (lib/models/reproduce.py) from the Dagster UI's launchpad.

    ops: {reproduce_run: {config: {run: "<run id | MLflow run id | champion:<location>/<target>>"}}}

The run fails with the refusal (unknown run, snapshot pruned / missing / not matching its hash)
or when the metrics differ; the comparison is in the step's output metadata either way.
"""


import dagster as dg

from snoiq_assets.defs.store import ObjectStoreResource
from snoiq_assets.lib.models.reproduce import DEFAULT_TOLERANCE, reproduce, resolve_run


class ReproduceConfig(dg.Config):
    run: str  # experiments run id, MLflow run id, or champion:<location>/<target>
    tolerance: float = DEFAULT_TOLERANCE


@dg.op(description="Retrain a past run from its snapshot with its recorded parameters and compare the metrics.")
def reproduce_run(context: dg.OpExecutionContext, config: ReproduceConfig, store: ObjectStoreResource) -> dict:
    obj_store = store.get_store()
    rep = reproduce(obj_store, resolve_run(obj_store, config.run), tolerance=config.tolerance)
    context.log.info(rep.summary())
    metadata = {
        "run_id": rep.run_id, "verdict": rep.verdict, "max_relative_difference": rep.max_relative_difference,
        "snapshot_sha256": rep.snapshot_sha256, "snapshot_rows": rep.snapshot_rows,
        "recorded_commit": rep.recorded_commit, "current_commit": rep.current_commit, "same_code": rep.same_code,
        "metrics": dg.MetadataValue.json(rep.metrics),
    }
    if not rep.ok:
        raise dg.Failure(description=rep.summary(), metadata=metadata)
    context.add_output_metadata(metadata)
    return {"run_id": rep.run_id, "verdict": rep.verdict}


@dg.job(description="Reproduce a training run (experiments run id, MLflow run id or champion:<location>/<target>) "
                    "from its stored rows; reports whether the metrics match and whether the code commit differs.")
def reproduce_job():
    reproduce_run()
