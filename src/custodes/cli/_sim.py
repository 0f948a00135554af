"""``custodes sim``: the simulated TEE vendor and its platforms (development and CI only)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from custodes.cli._common import die, duration_option, handles_errors, time_option
from custodes.clock import utcnow
from custodes.evidence.simvendor import SimVendor

sim_app = typer.Typer(help="The simulated TEE (development and CI only).", no_args_is_help=True)
tcb_app = typer.Typer(help="Publish simulated TCB info.", no_args_is_help=True)
platform_app = typer.Typer(help="Simulated platforms.", no_args_is_help=True)
sim_app.add_typer(tcb_app, name="tcb")
sim_app.add_typer(platform_app, name="platform")


# A platform certificate carries its TCB level as a 32-bit number; `init` lists every level below the newest in the
# TCB info, 30 days apart, so its level is kept small enough for that list (and its dates) to stay sensible.
_MAX_LEVEL = 2**32 - 1
_MAX_INIT_LEVEL = 1000




def _level(flag: str, value: int, maximum: int = _MAX_LEVEL) -> int:
    if not 1 <= value <= maximum:
        die("ARGUMENT_INVALID", f"{flag}: a TCB level is between 1 and {maximum}")
    return value


@sim_app.command("init")
@handles_errors
def init(
    directory: Path,
    platforms: Annotated[int, typer.Option(min=1, max=1000, help="how many platforms")] = 2,
    tcb_level: Annotated[int, typer.Option(min=1, help="the platforms' (and the newest) TCB level")] = 2,
) -> None:
    """Create a simulated vendor with PLATFORMS platforms in DIRECTORY."""
    tcb_level = _level("--tcb-level", tcb_level, _MAX_INIT_LEVEL)
    vendor = SimVendor.init(directory, platforms=platforms, tcb_level=tcb_level, now=utcnow())
    print(f"SIMULATED vendor created in {directory} (development only)")
    for platform in vendor.platforms():
        print(f"platform {platform.platform_id} level {platform.tcb_level}: {platform.path}")


@tcb_app.command("publish")
@handles_errors
def publish(
    directory: Path,
    level: Annotated[int, typer.Option(help="the new newest TCB level")],
    advisory: Annotated[list[str] | None, typer.Option(help="advisory fixed by the new level (repeatable)")] = None,
    date: Annotated[str | None, typer.Option(help="tcbDate of the new level (ISO 8601; default now)")] = None,
    valid_for: Annotated[str, typer.Option(help="how long the TCB info is valid (duration)")] = "30d",
) -> None:
    """Publish TCB info with a new newest LEVEL; every lower level becomes OutOfDate."""
    level = _level("--level", level)
    tcb_date = time_option("--date", date) if date else None
    vendor = SimVendor(directory)
    info = vendor.publish(
        level=level,
        now=utcnow(),
        tcb_date=tcb_date,
        advisories=tuple(advisory or ()),
        valid_for=duration_option("--valid-for", valid_for),
    )
    print(f"TCB info #{info.evaluation_number} published; valid until {info.next_update.isoformat()}")
    for lvl in info.levels:
        advisories = " ".join(lvl.advisories)
        print(f"  level {lvl.level}: {lvl.status}, tcbDate {lvl.tcb_date.isoformat()} {advisories}".rstrip())


@platform_app.command("list")
@handles_errors
def list_platforms(directory: Path) -> None:
    """List the simulated platforms with their TCB level and status."""
    vendor = SimVendor(directory)
    info = vendor.tcb_info()
    for platform in vendor.platforms():
        status = info.match(platform.tcb_level)
        print(f"{platform.platform_id} level {platform.tcb_level} {status.status} {platform.path}")


@platform_app.command("upgrade")
@handles_errors
def upgrade(
    directory: Path,
    platform_id: str,
    level: Annotated[int, typer.Option(help="the new TCB level (as after a microcode update)")],
) -> None:
    """Patch a platform: the vendor re-certifies it at LEVEL."""
    SimVendor(directory).upgrade_platform(platform_id, tcb_level=_level("--level", level), now=utcnow())
    print(f"platform {platform_id} now at level {level}")
