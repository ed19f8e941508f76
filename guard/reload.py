"""Policies, tenant mapping and routes change without a restart.

The `--config` file (or GUARD_CONFIG) is watched by its path, following symlinks, so a Kubernetes
ConfigMap update (kubelet swaps the `..data` symlink) or an editor's atomic replace is seen; SIGHUP
reloads at once. A reload reads and validates the whole file (with the same environment variables
and flags as at start), builds the new policy set (and the route set, embedding its examples)
off the event loop, and swaps both in one assignment: a request decides with the old set or the
new one, never a mix, and a stream keeps the policy it was opened with. An invalid file is refused:
the last good configuration keeps serving and the error is logged naming the field. Settings that
only a restart can apply (ports, model, limits, ...) are reported, not silently ignored.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guard.errors import ConfigError, GuardError
from guard.policy import PolicySet
from guard.settings import Settings, load_settings

log = logging.getLogger(__name__)

LIVE_FIELDS = ("policies", "default_policy", "tenant_policies", "routes", "route_threshold")


@dataclass
class ConfigSource:
    """Where the settings came from: the file and the command-line values that override it."""

    path: Path
    overrides: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, config_file: str | os.PathLike | None, **overrides: Any) -> ConfigSource | None:
        path = config_file or os.environ.get("GUARD_CONFIG")
        return cls(Path(path), overrides) if path else None


def file_stamp(path: Path) -> tuple | None:
    """What changes when a watched file does (None when it cannot be read): the file behind the
    path (following symlinks, so a Kubernetes `..data` swap gives another inode), its size and
    modification time. The config file and the auth token file are watched with it."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_ino, info.st_dev, info.st_size, info.st_mtime_ns


class ConfigReloader:
    def __init__(self, engine, source: ConfigSource, interval_s: float) -> None:
        self.engine = engine
        self.source = source
        self.interval_s = interval_s
        self.running: Settings = engine.settings  # what serves now (live fields as last applied)
        self._stamp = file_stamp(source.path)
        self._lock = asyncio.Lock()

    async def watch(self) -> None:
        """Poll the file every `interval_s` seconds; reload when it changed."""
        while True:
            await asyncio.sleep(self.interval_s)
            stamp = file_stamp(self.source.path)
            if stamp is not None and stamp != self._stamp:
                await self.reload("the file changed")

    async def reload(self, why: str) -> str:
        """Reload now; returns the result (applied, unchanged, rejected)."""
        async with self._lock:
            self._stamp = file_stamp(self.source.path)
            result = await self._reload(why)
        self.engine.metrics.config_reloads.labels(result).inc()
        return result

    async def _reload(self, why: str) -> str:
        loop = asyncio.get_running_loop()
        try:
            new = await loop.run_in_executor(
                None, lambda: load_settings(self.source.path, **self.source.overrides)
            )
            restart = [
                name
                for name in Settings.model_fields
                if name not in LIVE_FIELDS and getattr(new, name) != getattr(self.engine.settings, name)
            ]
            changed = [name for name in LIVE_FIELDS if getattr(new, name) != getattr(self.running, name)]
            if changed:
                await loop.run_in_executor(None, self._apply, new, changed)
        except ConfigError as exc:
            log.error(
                "config reload (%s) refused, the last good configuration keeps serving: %s", why, exc.message
            )
            return "rejected"
        self.engine.metrics.config_restart_required.set(1 if restart else 0)
        if restart:
            log.warning(
                "config reload (%s): %s changed; these settings apply only after a restart",
                why,
                ", ".join(restart),
            )
        if not changed:
            return "unchanged"
        self.running = self.running.model_copy(update={name: getattr(new, name) for name in LIVE_FIELDS})
        versions = ", ".join(f"{p.name} {p.version}" for p in self.engine.policies.policies.values())
        log.info("config reloaded (%s): %s; policies now %s", why, ", ".join(changed), versions)
        return "applied"

    def _apply(self, new: Settings, changed: list[str]) -> None:
        """Build everything first (errors leave the running configuration alone), then swap."""
        try:
            policies = PolicySet(new.policies, new.default_policy, new.tenant_policies)
        except (ValueError, GuardError) as exc:
            raise ConfigError(f"policies: {exc}") from None
        router = self.engine.router
        if {"routes", "route_threshold"} & set(changed):
            if router is None or not new.routing or not new.routes:
                raise ConfigError("routes: routing was off at start-up; turning it on needs a restart")
            from guard.routing import Router

            try:
                router = Router(new.routes, router.embed, new.route_threshold)
            except ValueError as exc:
                raise ConfigError(f"routes: {exc}") from None
        self.engine.reconfigure(policies, router)
