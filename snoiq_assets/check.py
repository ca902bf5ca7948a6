"""`python -m snoiq_assets.check`: validate settings and reach the store, with one clear line.

Used by `make demo` before anything runs, and by the compose services' start-up.
"""

from __future__ import annotations

import sys
from typing import Callable

from snoiq_assets.lib.storage import ObjectStore, store_from_settings
from snoiq_assets.settings import Settings, SettingsError


def checked_settings() -> Settings | None:
    """Settings from the environment with the store reached, or None after one clear message."""
    try:
        settings = Settings.from_env()
        store_from_settings(settings).check()
    except SettingsError as exc:
        print(f"snoiq settings error: {exc}", file=sys.stderr)
        return None
    return settings


def run_store_command(action: Callable[[Settings, ObjectStore], int]) -> int:
    """A command-line tool's body over the store: exit 2 with one line on bad settings, and
    on a model-store refusal (``ModelError``: unknown run, pruned or tampered snapshot)."""
    from snoiq_assets.lib.models import ModelError

    settings = checked_settings()
    if settings is None:
        return 2
    try:
        return action(settings, store_from_settings(settings))
    except ModelError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2


def main() -> int:
    settings = checked_settings()
    if settings is None:
        return 2
    print(f"snoiq: profile {settings.profile}, outputs in {settings.describe()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
