"""The pod sandbox ("pause") image: a static program that sleeps, reaps children, exits on signal."""

from __future__ import annotations

from pathlib import Path

from labctl.localcluster.images.gobuild import build_program
from labctl.localcluster.images.oci import File, ImageConfig, write_image
from labctl.localcluster.toolchain.paths import cache_root

NAME = "labctl.local/pause:3.10"

SOURCE = """\
// pause holds a pod's namespaces: it sleeps, reaps zombies (PID namespace sharing) and exits on
// SIGINT/SIGTERM, like registry.k8s.io/pause.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
"""


def pause_archive() -> Path:
    """Build (or reuse) the pause image archive; returns its path."""
    binary = build_program("pause", {"main.go": SOURCE})
    path = cache_root() / "images" / f"pause-{binary.name.rsplit('-', 1)[1]}.tar"
    if path.exists():
        return path
    files = [File("/pause", binary.read_bytes(), 0o755)]
    return write_image(path, NAME, files, ImageConfig(entrypoint=["/pause"], env=()))
