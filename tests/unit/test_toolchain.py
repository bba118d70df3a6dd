"""The toolchain builder's pure parts: replace lines, the tools go.mod, ldflags, the cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.localcluster.toolchain import build, paths, versions

UPSTREAM = {
    "Module": {"Path": "k8s.io/kubernetes"},
    "Go": "1.26.0",
    "Godebug": [{"Key": "default", "Value": "go1.26"}],
    "Replace": [
        {"Old": {"Path": "k8s.io/api"}, "New": {"Path": "./staging/src/k8s.io/api"}},
        {"Old": {"Path": "k8s.io/client-go"}, "New": {"Path": "./staging/src/k8s.io/client-go"}},
        {"Old": {"Path": "example.com/fork"}, "New": {"Path": "example.com/other", "Version": "v1.0.0"}},
    ],
}


def test_staging_replaces_point_at_published_staging_modules() -> None:
    assert build.staging_replaces(UPSTREAM, "v0.36.3") == [
        ("k8s.io/api", "k8s.io/api", "v0.36.3"),
        ("k8s.io/client-go", "k8s.io/client-go", "v0.36.3"),
    ]


def test_tools_gomod_requires_the_pinned_module_with_replaces() -> None:
    text = build.render_tools_gomod(
        paths.KUBERNETES,
        go_version="1.26.0",
        godebug=["default=go1.26"],
        replaces=build.staging_replaces(UPSTREAM, versions.KUBERNETES_STAGING),
    )
    assert f"require k8s.io/kubernetes {versions.KUBERNETES}\n" in text
    assert "\tk8s.io/api => k8s.io/api v0.36.3\n" in text
    assert "godebug default=go1.26" in text
    assert "go 1.26.0" in text


def test_staging_version_follows_kubernetes() -> None:
    assert versions.KUBERNETES == "v1.36.3"
    assert versions.KUBERNETES_STAGING == "v0.36.3"


def test_kubernetes_ldflags_stamp_both_version_packages() -> None:
    flags = build.ldflags(paths.KUBERNETES)
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        assert f"-X {pkg}.gitVersion=v1.36.3" in flags
        assert f"-X {pkg}.gitMajor=1" in flags
        assert f"-X {pkg}.gitMinor=36" in flags


def test_cache_is_keyed_by_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABCTL_CACHE_DIR", str(tmp_path))
    assert paths.binary("kube-apiserver") == tmp_path / "bin" / "kubernetes-v1.36.3" / "kube-apiserver"
    assert paths.binary("etcd") == tmp_path / "bin" / "etcd-v3.6.14" / "etcd"


def test_missing_lists_only_unbuilt_binaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABCTL_CACHE_DIR", str(tmp_path))
    assert "etcd" in paths.missing()
    etcd = paths.binary("etcd")
    etcd.parent.mkdir(parents=True)
    etcd.write_text("#!/bin/sh\n")
    etcd.chmod(0o755)
    missing = paths.missing()
    assert "etcd" not in missing
    assert missing[:2] == ["kwok", "kwokctl"]


def test_unknown_binary_is_named() -> None:
    with pytest.raises(KeyError, match="kubelet-x"):
        paths.binary("kubelet-x")
