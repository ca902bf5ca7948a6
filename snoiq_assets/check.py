"""`python -m snoiq_assets.check`: validate settings and reach the store, with one clear line.

Used by `make demo` before anything runs, and by the compose services' start-up.
"""

from __future__ import annotations

import sys

from snoiq_assets.lib.storage import store_from_settings
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


def main() -> int:
    settings = checked_settings()
    if settings is None:
        return 2
    print(f"snoiq: profile {settings.profile}, outputs in {settings.describe()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
