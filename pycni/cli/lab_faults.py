"""``pycni lab faults|break|heal|doctor``: break a lab node on purpose, ask ``pycni doctor``, heal it.

    pycni lab faults                 the faults, the doctor check that names each, which are active
    pycni lab break n1 ip-forward    make one (recorded in the lab's state: lab down undoes it)
    pycni lab doctor n1              pycni doctor inside n1's namespace, with n1's paths (--probe is on)
    pycni lab heal n1 [ip-forward]   put it back (every fault of n1 without a name)

The faults themselves are pycni.cluster.lab_faults; this module only parses and prints.
"""

from __future__ import annotations

import argparse
import subprocess
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pycni.cluster.lab import Lab

__all__ = ["COMMANDS", "add_fault_commands", "cmd_fault"]

COMMANDS = ("faults", "break", "heal", "doctor")


def add_fault_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub.add_parser("faults", help="the faults 'lab break' makes, the doctor check naming each, which are active")
    brk = sub.add_parser("break", help="inject a fault into a node (see 'pycni lab faults')")
    brk.add_argument("node")
    brk.add_argument("fault")
    heal = sub.add_parser("heal", help="undo a node's fault, or all of them; restarts the agent if it was stopped")
    heal.add_argument("node")
    heal.add_argument("fault", nargs="?")
    doc = sub.add_parser("doctor", help="run 'pycni doctor' in a node's namespace with that node's paths",
                         description="Relays pycni doctor's output and exit code (0 healthy, 1 a check "
                         "failed, 2 doctor could not run). Active checks across nodes (--probe) are on.")
    doc.add_argument("node")
    doc.add_argument("--json", action="store_true", help="machine-readable output")
    doc.add_argument("--probe", action="store_true", default=True, help="active checks across nodes (default)")
    doc.add_argument("--no-probe", dest="probe", action="store_false", help="no active checks (faster)")
    doc.add_argument("--no-synthetic", action="store_true", help="skip the throw-away ADD/CHECK/DEL")
    doc.add_argument("-v", "--verbose", action="store_true", help="show evidence of passing checks too")
    doc.add_argument("--ignore", action="append", default=[], metavar="ID", help="a check id to ignore; repeatable")


def cmd_fault(lab: Lab, args: argparse.Namespace) -> int:
    from pycni.cluster.lab_faults import FAULTS, break_fault, doctor_command, heal_faults

    if args.lab_command == "faults":
        active = {(f.node, f.fault) for f in lab.state.faults}
        for fault in FAULTS.values():
            on = sorted(node for node, name in active if name == fault.name)
            notes = ["agent stopped" if fault.stop_agent else "",
                     "" if not fault.backends or lab.state.backend in fault.backends
                     else f"{'/'.join(fault.backends)} only",
                     f"ACTIVE on {','.join(on)}" if on else ""]
            print(f"{fault.name:18} {fault.check:18} {fault.summary}"
                  + "".join(f" [{n}]" for n in notes if n))
    elif args.lab_command == "break":
        fault = break_fault(lab, args.node, args.fault)
        stopped = "; its agent is stopped (it would repair this)" if fault.stop_agent else ""
        print(f"broke {args.node}: {fault.name} ({fault.summary}){stopped}")
        print(f"pycni lab doctor {args.node} names it as '{fault.check}'; pycni lab heal {args.node} "
              f"{fault.name} undoes it")
    elif args.lab_command == "heal":
        healed = heal_faults(lab, args.node, args.fault)
        print(f"healed {args.node}: {', '.join(healed)}" if healed else f"{args.node} had no fault to heal")
    else:
        flags = {"--json": args.json, "--probe": args.probe, "--no-synthetic": args.no_synthetic,
                 "--verbose": args.verbose}
        extra = [flag for flag, on in flags.items() if on]
        extra += [arg for check in args.ignore for arg in ("--ignore", check)]
        return subprocess.call(doctor_command(lab.state, args.node, extra))
    return 0
