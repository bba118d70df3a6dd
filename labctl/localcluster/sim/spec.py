"""What a simulated cluster is made of: its name and its node pools."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from labctl.core.errors import UsageError
from labctl.core.labels import dns_label_problem

DEFAULT_NAME = "labctl"
# kwokctl prefixes contexts and node names with the cluster name; keep room for both.
MAX_NAME_LEN = 40


@dataclass(frozen=True)
class SimSpec:
    """The sizes of a simulated cluster. Two specs are equal when the clusters are."""

    name: str = DEFAULT_NAME
    cpu_nodes: int = 3
    gpu_nodes: int = 2
    gpus_per_node: int = 4

    def __post_init__(self) -> None:
        problems = []
        if problem := dns_label_problem(self.name, max_len=MAX_NAME_LEN):
            problems.append(f"cluster name {self.name!r}: {problem}")
        for field in ("cpu_nodes", "gpu_nodes", "gpus_per_node"):
            value = getattr(self, field)
            if not isinstance(value, int) or value < 0:
                problems.append(f"--{field.replace('_', '-')}: must be a whole number >= 0 (got {value!r})")
        if self.gpu_nodes and self.gpus_per_node < 1:
            problems.append("--gpus-per-node: must be >= 1 when there are GPU nodes")
        if problems:
            raise UsageError("; ".join(problems))

    def check_has_nodes(self, *, real_node: bool) -> None:
        """A cluster needs somewhere to run pods: a kwok node or the real one."""
        if self.cpu_nodes + self.gpu_nodes == 0 and not real_node:
            raise UsageError("the cluster needs at least one node (--cpu-nodes, --gpu-nodes or --real-node)")

    def sizes(self) -> dict[str, int]:
        data = asdict(self)
        data.pop("name")
        return data

    def describe(self) -> str:
        return f"{self.cpu_nodes} CPU node(s), {self.gpu_nodes} GPU node(s) x {self.gpus_per_node} GPU(s)"
