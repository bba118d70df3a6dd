"""What every handler shares: the API connection, the credentials key, stack settings."""

from __future__ import annotations

from dataclasses import dataclass, field

import kopf

from labctl.controller.refresh import StatusWriter
from labctl.kube import Kube
from labctl.provision.stacks import StackSettings


@dataclass
class Memo:
    kube: Kube
    key: bytes
    stack_settings: StackSettings | None = None
    status: StatusWriter = field(init=False)  # status writes, apart from reconciles

    def __post_init__(self) -> None:
        self.status = StatusWriter(self.kube)

    def connection_info(self) -> kopf.ConnectionInfo:
        """kopf's own connection, from the same kubeconfig/context labctl was given."""
        conf = self.kube.api_client.configuration
        header = conf.get_api_key_with_prefix("BearerToken") or conf.get_api_key_with_prefix("authorization")
        scheme, _, token = (header or "").partition(" ")
        return kopf.ConnectionInfo(
            server=conf.host,
            ca_path=conf.ssl_ca_cert,
            insecure=not conf.verify_ssl,
            scheme=scheme or None,
            token=token or None,
            certificate_path=conf.cert_file,
            private_key_path=conf.key_file,
        )
