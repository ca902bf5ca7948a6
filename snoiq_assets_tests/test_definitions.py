"""The whole code location loads, and its graph matches the reviewed snapshot.

A change to asset keys, groups, partitions or dependencies shows up as a diff of
snapshots/asset_graph.json. ``inputs`` are the upstream assets whose data the IO manager hands
over (every read of another asset's data is one of these); ``deps`` are all upstream assets,
including those an asset only follows (e.g. a raw-zone landing). After an intended change:
    SNOIQ_UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest snoiq_assets_tests/test_definitions.py
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_graph.json"
REPO = Path(__file__).resolve().parent.parent


def loaded_inputs(assets_def: dg.AssetsDefinition, key: dg.AssetKey) -> list[str]:
    """The upstream keys ``key`` loads data from (inputs that are not Nothing-typed deps)."""
    ins = assets_def.op.ins
    return sorted(up.to_user_string() for name, up in assets_def.keys_by_input_name.items()
                  if name in ins and not ins[name].dagster_type.is_nothing and up in assets_def.asset_deps.get(key, {up}))


def graph_snapshot(defs: dg.Definitions) -> dict:
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        partitions = node.partitions_def
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "inputs": loaded_inputs(node.assets_def, key),
            "partitions": type(partitions).__name__ if partitions else None,
            "checks": sorted(c.name for c in node.check_keys),
            "has_freshness_policy": getattr(node, "freshness_policy", None) is not None,
        }
    return {
        "assets": assets,
        "sensors": sorted(s.name for s in defs.sensors or []),
        "schedules": sorted(s.name for s in defs.schedules or []),
        "resources": sorted(defs.resources or {}),
    }


def test_definitions_load_and_match_snapshot(monkeypatch, tmp_path):
    monkeypatch.setenv("SNOIQ_HOME", str(tmp_path))
    from snoiq_assets.definitions import defs

    defs.validate_loadable(defs)
    snap = graph_snapshot(defs)
    if os.environ.get("SNOIQ_UPDATE_SNAPSHOTS") or not SNAPSHOT.exists():
        SNAPSHOT.write_text(json.dumps(snap, indent=2, sort_keys=True) + "\n")
    assert snap == json.loads(SNAPSHOT.read_text())


def test_dg_check_defs_passes(tmp_path):
    # The dg CLI loads the project through [tool.dg] in pyproject.toml, as `dg launch` does.
    # With no DAGSTER_HOME it would read the compose stack's dagster.yaml (Postgres), so point
    # it at a local instance as `make` does.
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "dagster.local.yaml").read_text())
    venv = Path(sys.executable).parent
    env = {**os.environ, "SNOIQ_HOME": str(tmp_path / "snoiq"), "DAGSTER_HOME": str(home),
           "VIRTUAL_ENV": str(venv.parent), "PATH": f"{venv}:{os.environ.get('PATH', '')}"}
    proc = subprocess.run([str(venv / "dg"), "check", "defs"], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "All definitions loaded successfully" in proc.stdout + proc.stderr


def test_descriptions_render_in_the_ui(monkeypatch, tmp_path):
    """The UI renders descriptions as Markdown: a `<name>` outside a code span is eaten as an
    HTML tag and `_a_` turns italic, so paths and placeholders are written as code spans."""
    import re

    monkeypatch.setenv("SNOIQ_HOME", str(tmp_path))
    from snoiq_assets.definitions import defs

    texts = {f"asset {n.key.to_user_string()}": n.description for n in defs.resolve_asset_graph().asset_nodes}
    texts.update({f"sensor {s.name}": s.description for s in defs.sensors or []})
    texts.update({f"schedule {s.name}": s.description for s in defs.schedules or []})
    bad = {}
    for what, text in texts.items():
        outside_code = re.sub(r"`[^`]*`", "", text or "")
        if re.search(r"<[A-Za-z/]", outside_code) or re.search(r"(^|\W)_\w+_(\W|$)", outside_code):
            bad[what] = text
    assert bad == {}
