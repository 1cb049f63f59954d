"""systemd units shared by the components: scheduled updates as a oneshot service and a timer."""

from __future__ import annotations

from collections.abc import Sequence

from . import programs
from .formats import systemd as unit_file
from .shell import put_file, q

PROGRAM = programs.load("systemd/timer.sh")


def oneshot_service(description: str, program: str | Sequence[str]) -> str:
    """A oneshot service running `program` (a path, or the words of a command line)."""
    words = [program] if isinstance(program, str) else list(program)
    return unit_file.unit([
        ("Unit", [("Description", unit_file.value(description)), ("After", "network-online.target"),
                  ("Wants", "network-online.target")]),
        ("Service", [("Type", "oneshot"), ("ExecStart", unit_file.command(words)), ("Nice", "10"),
                     ("IOSchedulingClass", "idle")]),
    ])


def timer(description: str, schedule: str) -> str:
    return unit_file.unit([
        ("Unit", [("Description", unit_file.value(description))]),
        ("Timer", [("OnCalendar", unit_file.value(schedule)), ("Persistent", "true"),
                   ("RandomizedDelaySec", "15min")]),
        ("Install", [("WantedBy", "timers.target")]),
    ])


def scheduled_lines(unit: str, description: str, program: str | Sequence[str], schedule: str) -> str:
    """Install `<unit>.service` + `<unit>.timer`, enable the timer and start it where systemd
    runs the machine (other service managers may not run timers: they are told so;
    programs/systemd/timer.sh)."""
    return "\n".join([
        PROGRAM,
        put_file(f"/etc/systemd/system/{unit}.service", oneshot_service(description, program), tag="units"),
        put_file(f"/etc/systemd/system/{unit}.timer", timer(description, schedule), tag="units"),
        f"airgap_timer_start units {q(unit + '.timer')}",
    ])


def remove_scheduled_lines(unit: str) -> str:
    return "\n".join([
        f"systemctl disable --now {q(unit + '.timer')} >/dev/null 2>&1 || true",
        f"rm -f {q(f'/etc/systemd/system/{unit}.service')} {q(f'/etc/systemd/system/{unit}.timer')}",
    ])
