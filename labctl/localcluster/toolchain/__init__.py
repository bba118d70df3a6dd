"""The Kubernetes toolchain labctl builds from Go modules: pins, cache layout, builder.

No release binaries or container images can be downloaded where labctl is developed,
so every control-plane binary is compiled from the Go module proxy at a pinned version.
"""
