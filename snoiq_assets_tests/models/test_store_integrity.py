"""Model store integrity (issue 14, item 4): one manifest hashes the model file and
metadata.json together, and loading refuses, with a clear error, what would otherwise give
silently wrong predictions (a reordered feature list, a flipped target transform) or take the
process down (a truncated LightGBM file segfaults the library; a truncated XGBoost file raises a
bare UnicodeDecodeError), also when every checksum was updated to match the damaged files."""

from __future__ import annotations

import hashlib
import json
import re

import numpy as np
import pytest

from snoiq_assets.lib.models import ModelError
from snoiq_assets.lib.models.store import MANIFEST_FILE, METADATA_FILE, load_bundle, save_bundle
from snoiq_assets.lib.models.train import MODEL_FILES, fit

FEATURES = ["air_temp_c", "dew_point_c", "wind_speed_m_s", "pressure_hpa"]


def _bundle(store, model_type: str, stamp: str) -> str:
    rng = np.random.default_rng(7)
    X = rng.normal(size=(300, len(FEATURES)))
    y = np.abs(3 * X[:, 0] - X[:, 2] + rng.normal(size=300))
    model = fit(model_type, X, y, FEATURES, {"n_estimators": 30, "max_depth": 3}, transform="log1p", n_jobs=1)
    meta = {"location": "S1", "run_timestamp": stamp, "target": "precip_mm", "training_window": {},
            "metrics": {"rmse": 1.0}, "data_versions": {}, "resolution_days": 1}
    return save_bundle(store, model, meta)


def _rewrite_metadata(store, prefix: str, meta: dict, *, update_manifest: bool) -> None:
    data = json.dumps(meta).encode()
    store.put(f"{prefix}/{METADATA_FILE}", data)
    if update_manifest:
        manifest = store.get_json(f"{prefix}/{MANIFEST_FILE}")
        manifest["files"][METADATA_FILE] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        store.put_json(f"{prefix}/{MANIFEST_FILE}", manifest)


def _truncate_with_checksums_updated(store, prefix: str, model_type: str, keep: float | int) -> None:
    """What an operator's tampering test did: cut the model file and fix every checksum.
    ``keep``: the fraction of the file kept, or (negative) the bytes cut from its end."""
    name = MODEL_FILES[model_type]
    data = store.get(f"{prefix}/{name}")
    cut = data[:keep] if isinstance(keep, int) else data[: int(len(data) * keep)]
    store.put(f"{prefix}/{name}", cut)
    digest = hashlib.sha256(cut).hexdigest()
    meta = json.loads(store.get(f"{prefix}/{METADATA_FILE}"))
    meta["model_sha256"] = digest
    meta_bytes = json.dumps(meta).encode()
    store.put(f"{prefix}/{METADATA_FILE}", meta_bytes)
    store.put_json(f"{prefix}/{MANIFEST_FILE}", {
        "manifest_version": 1, "snapshot_sha256": None,
        "files": {name: {"sha256": digest, "bytes": len(cut)},
                  METADATA_FILE: {"sha256": hashlib.sha256(meta_bytes).hexdigest(), "bytes": len(meta_bytes)}},
    })


def test_metadata_changes_are_refused_by_the_manifest(store):
    prefix = _bundle(store, "xgboost", "20240101T000000000000Z")
    model, meta = load_bundle(store, prefix)
    assert meta["features"] == FEATURES and meta["target_transform"] == "log1p"
    good = json.loads(store.get(f"{prefix}/{METADATA_FILE}"))

    # A reordered feature list: the same model would read wind speed as temperature.
    _rewrite_metadata(store, prefix, {**good, "features": list(reversed(FEATURES))}, update_manifest=False)
    with pytest.raises(ModelError, match=r"metadata.json does not match the manifest.*refusing"):
        load_bundle(store, prefix)
    # A flipped target transform: predictions would be exp(x)-1 of what they should be, or log.
    _rewrite_metadata(store, prefix, {**good, "target_transform": "none"}, update_manifest=False)
    with pytest.raises(ModelError, match=r"metadata.json does not match the manifest"):
        load_bundle(store, prefix)
    # Restored byte for byte, it loads again and predicts as before.
    store.put(f"{prefix}/{METADATA_FILE}", json.dumps(good, indent=2, sort_keys=True, default=str).encode())
    again, _ = load_bundle(store, prefix)
    row = np.array([[1.0, 0.5, 2.0, 1010.0]])
    assert again.predict(row)[0] == model.predict(row)[0]
    # The model file changed under an unchanged manifest.
    store.put(f"{prefix}/model.ubj", store.get(f"{prefix}/model.ubj") + b" ")
    with pytest.raises(ModelError, match=r"model.ubj does not match the checksum in its manifest"):
        load_bundle(store, prefix)
    # No manifest: an incomplete write or a model stored before manifests.
    store.delete(f"{prefix}/{MANIFEST_FILE}")
    with pytest.raises(ModelError, match=r"manifest.json is missing"):
        load_bundle(store, prefix)


def test_truncated_lightgbm_with_updated_checksums_is_refused_not_a_segfault(store):
    prefix = _bundle(store, "lightgbm", "20240102T000000000000Z")
    load_bundle(store, prefix)
    _truncate_with_checksums_updated(store, prefix, "lightgbm", keep=0.5)
    with pytest.raises(ModelError) as err:
        load_bundle(store, prefix)
    msg = str(err.value)
    # The library died (or refused) in the child process; this process names the file and goes on.
    # Which signal depends on the child's heap: SIGSEGV in a fresh child, SIGABRT (glibc's heap
    # check) in one that loaded the good file first.
    assert f"{prefix}/model.txt" in msg, msg
    assert re.search(r"crashed \(SIG(SEGV|ABRT|BUS)\)|not a valid LightGBM model", msg), msg


def test_truncated_xgboost_with_updated_checksums_is_refused_not_a_crash(store):
    """XGBoost fails on a truncated UBJSON file in several ways depending on where it is cut: an
    XGBoostError, a decode error, or (cut in the last few hundred bytes, seen with 3.2) SIGSEGV.
    Every cut is one refusal naming the file."""
    prefix = _bundle(store, "xgboost", "20240103T000000000000Z")
    whole = store.get(f"{prefix}/model.ubj")
    for keep in (0.6, -382, -253):
        store.put(f"{prefix}/model.ubj", whole)
        _truncate_with_checksums_updated(store, prefix, "xgboost", keep)
        with pytest.raises(ModelError, match=r"model_type=xgboost/model.ubj: .*(not a valid XGBoost model|crashed)") as err:
            load_bundle(store, prefix)
        assert not isinstance(err.value.__cause__, UnicodeDecodeError)


def test_truncated_random_forest_with_updated_checksums_is_refused(store):
    prefix = _bundle(store, "random_forest", "20240104T000000000000Z")
    _truncate_with_checksums_updated(store, prefix, "random_forest", keep=0.7)
    with pytest.raises(ModelError, match=r"model.skops.*(not a valid skops file|crashed|could not load)"):
        load_bundle(store, prefix)


@pytest.mark.parametrize("model_type,imported", [("lightgbm", []), ("xgboost", ["sklearn"]),
                                                 ("random_forest", ["pandas", "sklearn"])])
def test_load_check_child_imports_only_what_its_library_needs(tmp_path, model_type, imported):
    """The load-check child loads and predicts with a real model file of each type, without
    scikit-learn and pandas where the library does not need them (2 s of a LightGBM check)."""
    import subprocess
    import sys

    from snoiq_assets.lib.models.train import save_native

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(200, len(FEATURES))), rng.normal(size=200)
    path = save_native(fit(model_type, X, y, FEATURES, {"n_estimators": 10, "max_depth": 3}, n_jobs=1), tmp_path)
    probe = ("import sys\nfrom snoiq_assets.lib.models.loadcheck import main\n"
             f"rc = main([{model_type!r}, {str(path)!r}, '{len(FEATURES)}'])\n"
             "print(sorted(m for m in ('pandas', 'sklearn') if sys.modules.get(m) is not None))\nsys.exit(rc)\n")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1].replace("'", '"')) == imported


def test_load_checker_serves_many_files_and_replaces_a_crashed_child(tmp_path):
    """The load check's child is kept per model type: two good files, one child (the library is
    imported once); a truncated file fails naming it (natively crashed or refused), blamed only
    once it crashed a fresh child too; the next good file is checked by a fresh child if the
    last one died."""
    from snoiq_assets.lib.models.store import LoadChecker
    from snoiq_assets.lib.models.train import save_native

    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(300, len(FEATURES))), rng.normal(size=300)
    paths = [save_native(fit("lightgbm", X, y, FEATURES, {"n_estimators": n}, n_jobs=1), tmp_path / f"m{n}")
             for n in (5, 9)]
    bad = tmp_path / "bad" / "model.txt"
    bad.parent.mkdir()
    whole = paths[1].read_bytes()
    bad.write_bytes(whole[: len(whole) // 2])
    checker = LoadChecker("lightgbm")
    try:
        for path in paths:
            checker.check(path, len(FEATURES), f"models/x/{path.parent.name}/model.txt")
        assert checker.starts == 1
        with pytest.raises(ModelError, match=r"^models/x/bad/model.txt: .*(crashed \(SIG[A-Z]+\)|not a valid LightGBM model)"):
            checker.check(bad, len(FEATURES), "models/x/bad/model.txt")
        crashed = checker._proc is None
        # a crash in the child that had checked two files is confirmed in a fresh child first
        assert checker.starts == (2 if crashed else 1)
        checker.check(paths[0], len(FEATURES), "models/x/m5/model.txt")
        assert checker.starts == (3 if crashed else 1)
        # a wrong feature count is the library's refusal, one line, and the child carries on
        with pytest.raises(ModelError, match=r"^models/x/m5/model.txt: .+"):
            checker.check(paths[0], len(FEATURES) + 3, "models/x/m5/model.txt")
        checker.check(paths[1], len(FEATURES), "models/x/m9/model.txt")
    finally:
        checker.close()
