"""Pinned versions of every binary labctl builds. The one place to bump them."""

from __future__ import annotations

KUBERNETES = "v1.36.3"
# The staging modules (k8s.io/api, k8s.io/client-go, ...) follow Kubernetes as v0.<minor>.<patch>.
KUBERNETES_STAGING = "v0." + KUBERNETES.removeprefix("v1.")
ETCD = "v3.6.14"
KWOK = "v0.8.0"
# The S3 gateway the learner stacks use; tests run the graders against it (posix backend).
VERSITYGW = "v1.8.0"
# DNS for pods on a real node (labctl sim up --real-node); built only when asked for.
COREDNS = "v1.14.7"
# Outside analyzers `make lint` and the guard-rail tests run over what labctl renders.
KUBE_SCORE = "v1.20.0"
CYCLONUS = "v0.5.6"
