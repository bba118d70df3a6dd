"""Local-cluster tooling: what makes a cluster on this machine, apart from the runtime.

:mod:`.toolchain` builds the Kubernetes binaries from Go modules, :mod:`.sim` runs a kwok
cluster, :mod:`.realnode` joins a real kubelet node to it, :mod:`.images` builds the stack and
controller images without a registry. The runtime (controller, services, rendering, graders)
never imports this package; an import-linter contract in pyproject.toml keeps it so. The CLI
wires its commands in (``labctl sim``, ``labctl images``, ``labctl toolchain``).
"""
