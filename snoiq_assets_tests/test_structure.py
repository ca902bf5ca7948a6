"""The house keeps its shape (CONTRIBUTING.md): read from the source, no Dagster run needed.

- lib/ is plain Python: no module under it imports Dagster or anything from defs/.
- The lake layout (lib/lake.py) is used by the IO manager only; no other module spells a lake
  key: an asset reads another asset's data through a declared input, never by key.
- Assets reach storage only through the IO manager and the raw-zone resource (``store``,
  a typed parameter): nothing in defs/ builds its own store or asks for ``required_resource_keys``.
- Each domain's sensors and schedules live in the domain; automation/ keeps the cross-domain part.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "snoiq_assets"
LAKE_LAYOUT = "snoiq_assets.lib.lake"
# The only modules that may know where asset outputs live.
# The analysis app (lib/analysis) and the xarray view of stored HRRR partitions
# (lib/hrrr/dataset.py) read the lake read-only from outside the graph, through lib/lake.py's
# key functions like the IO manager.
LAYOUT_USERS = {"snoiq_assets/lib/lake.py", "snoiq_assets/defs/io_manager.py", "snoiq_assets/lib/analysis/catalog.py",
                "snoiq_assets/lib/hrrr/dataset.py"}
# Ways around the raw-zone resource: building a store directly.
STORE_BUILDERS = {"store_from_settings", "LocalStore", "S3Store"}


def modules(under: str) -> list[Path]:
    return sorted((PACKAGE / under).rglob("*.py"))


def rel(path: Path) -> str:
    return str(path.relative_to(PACKAGE.parent))


def imported_modules(tree: ast.AST) -> set[str]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{alias.name}" for alias in node.names)
    return out


def imported_names(tree: ast.AST) -> set[str]:
    return {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names}


def string_constants(tree: ast.AST) -> list[str]:
    # Docstrings may describe the layout; code may not use it.
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def parse(path: Path) -> ast.AST:
    return ast.parse(path.read_text(), filename=str(path))


def test_lib_imports_neither_dagster_nor_defs():
    offenders = {}
    for path in modules("lib"):
        bad = sorted(m for m in imported_modules(parse(path))
                     if m.split(".")[0] in ("dagster", "dagster_aws", "dagster_duckdb", "dagster_mlflow")
                     or m.startswith("snoiq_assets.defs"))
        if bad:
            offenders[rel(path)] = bad
    assert offenders == {}


def test_only_the_io_manager_knows_the_lake_layout():
    offenders = {}
    for path in [*modules("defs"), *modules("lib"), PACKAGE / "definitions.py"]:
        if rel(path) in LAYOUT_USERS:
            continue
        tree = parse(path)
        bad = sorted(m for m in imported_modules(tree)
                     if m.startswith(LAKE_LAYOUT) or m.startswith("snoiq_assets.defs.io_manager"))
        # The IO manager class itself is wired in resources.py; nothing else imports the module.
        if rel(path) == "snoiq_assets/defs/resources.py":
            bad = [m for m in bad if m != "snoiq_assets.defs.io_manager.PartitionedParquetIOManager"
                   and m != "snoiq_assets.defs.io_manager"]
        bad += [s for s in string_constants(tree) if s == "lake" or s.startswith("lake/")]
        if bad:
            offenders[rel(path)] = bad
    # The datadecide side tables (rejects, the wide history) are written beside the lake by
    # their domain's library and read by no asset.
    assert offenders == {"snoiq_assets/lib/datadecide/duck.py": ["lake/datadecide"]}


def test_assets_reach_storage_through_the_io_manager_and_the_raw_zone_resource():
    offenders = {}
    for path in modules("defs"):
        tree = parse(path)
        # store.py is the raw-zone resource: it builds its store from the settings.
        bad = sorted(imported_names(tree) & STORE_BUILDERS) if rel(path) != "snoiq_assets/defs/store.py" else []
        source = path.read_text()
        bad += [word for word in ("required_resource_keys", "context.resources") if word in source]
        if bad:
            offenders[rel(path)] = bad
    assert offenders == {}


def test_each_domain_owns_its_automation():
    automation = {p.name for p in (PACKAGE / "defs" / "automation").glob("*.py")}
    assert automation == {"__init__.py", "freshness.py", "landing.py"}
    for domain in ("hrrr", "stations", "models"):
        assert (PACKAGE / "defs" / domain / "sensors.py").exists()
        assert (PACKAGE / "defs" / domain / "schedules.py").exists()
    for domain in ("hrrr", "stations", "features", "models", "datadecide", "automation"):
        tree = parse(PACKAGE / "defs" / domain / "__init__.py")
        assert any(isinstance(n, ast.FunctionDef) and n.name == "build_defs" for n in tree.body), domain
