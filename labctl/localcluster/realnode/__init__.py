"""A real kubelet node joined to a labctl sim control plane (``labctl sim up --real-node``).

One module per job: :mod:`layout` (paths, ports, names), :mod:`prereqs` (what the host
needs), :mod:`pki` (node identities), :mod:`containerd`, :mod:`cni`, :mod:`cgroups`,
:mod:`kubelet`, :mod:`kubeproxy`, :mod:`images` (pause and image import) and :mod:`node`,
which puts them together (``ensure`` / ``teardown``).
"""
