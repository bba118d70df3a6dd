"""How fast a simulated cluster is ready, beside the floor kwokctl itself sets.

Prints, in one run on this machine:
  baseline  `kwokctl create cluster` alone (same binaries, same config, no nodes, no waiting on them)
  labctl    `labctl sim up` cold (create + register nodes + wait until Ready), warm (unchanged), down
Target: `labctl sim up` ready in <= 30 s with the binaries cached.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from labctl.localcluster.sim import cluster as sim

LABCTL = [sys.executable, "-m", "labctl.cli"]


def timed(cmd: list[str], env: dict[str, str]) -> float:
    started = time.monotonic()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    return time.monotonic() - started


def main() -> None:
    binaries = sim.require_binaries()
    with tempfile.TemporaryDirectory() as state:
        env = {**os.environ, "LABCTL_STATE_DIR": state}
        os.environ["LABCTL_STATE_DIR"] = state
        config = Path(state) / "kwokctl.yaml"
        config.write_text(yaml.safe_dump_all([sim.kwokctl_config(binaries), *sim.stages()]))
        kwok_env = {**env, "KWOK_WORKDIR": str(sim.kwok_workdir())}
        kwokctl = [str(binaries["kwokctl"]), "--config", str(config)]
        base_up = timed(
            [*kwokctl, "create", "cluster", "--name", "bench-base", "--kubeconfig", "", "--wait", "60s"],
            kwok_env,
        )
        base_down = timed([*kwokctl, "delete", "cluster", "--name", "bench-base"], kwok_env)

        cold = timed([*LABCTL, "sim", "up", "bench"], env)
        warm = timed([*LABCTL, "sim", "up", "bench"], env)
        down = timed([*LABCTL, "sim", "down", "bench"], env)

    print(f"{'measure':<34}{'baseline (kwokctl)':>20}{'labctl sim':>14}")
    print(f"{'up, binaries cached (s)':<34}{base_up:>20.1f}{cold:>14.1f}")
    print(f"{'up again, unchanged (s)':<34}{'-':>20}{warm:>14.1f}")
    print(f"{'down (s)':<34}{base_down:>20.1f}{down:>14.1f}")
    print(f"target: up <= 30 s -> {'met' if cold <= 30 else 'MISSED'}")


if __name__ == "__main__":
    main()
