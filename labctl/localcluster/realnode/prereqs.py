"""What the host must provide for a real node; each miss is named with the way to get it."""

from __future__ import annotations

import os
import shutil

from labctl.core.errors import LabctlError, MissingBinariesError
from labctl.localcluster.realnode import containerd
from labctl.localcluster.toolchain import paths

DEBIAN_PACKAGES = "containerd runc containernetworking-plugins iptables"
COMMANDS = {  # command -> Debian package
    "containerd": "containerd",
    "containerd-shim-runc-v2": "containerd",
    "ctr": "containerd",
    "runc": "runc",
    "iptables": "iptables",
    "iptables-save": "iptables",
    "ip": "iproute2",
    "umount": "mount",
}
BUILD_HINT = "python -m labctl.localcluster.realnode build   (or: make e2e)"


def check() -> None:
    """Raise an error listing every missing prerequisite, with how to install it."""
    problems = []
    if os.geteuid() != 0:
        problems.append("a real node runs containers and sets up networking: run labctl as root")
    missing = {cmd: pkg for cmd, pkg in COMMANDS.items() if shutil.which(cmd) is None}
    if missing:
        pkgs = " ".join(sorted(set(missing.values())))
        problems.append(f"{', '.join(missing)} not found: apt-get install {pkgs}")
    if containerd.cni_bin_dir() is None:
        problems.append(
            f"CNI plugins not found in {' or '.join(containerd.CNI_BIN_DIRS)}: "
            "apt-get install containernetworking-plugins"
        )
    if problems:
        raise LabctlError("cannot start a real node:\n  " + "\n  ".join(problems))
    if unbuilt := paths.missing(paths.NODE_GROUPS):
        raise MissingBinariesError(
            f"missing node binaries: {', '.join(unbuilt)} (not in {paths.cache_root() / 'bin'}).\n"
            f"Build them with: {BUILD_HINT}"
        )
