"""The StorageClass a new EKS 1.32 cluster has, created when the sandbox starts.

EKS creates the `gp2` class in every cluster: the in-tree provisioner name
`kubernetes.io/aws-ebs` (served by the EBS CSI driver, `ebs.csi.aws.com`, through CSI
migration), `type: gp2`, `fsType: ext4`, `reclaimPolicy: Delete`,
`volumeBindingMode: WaitForFirstConsumer`.

**It is not the default class.** "Starting with 1.30, Amazon EKS no longer includes
the default annotation on the gp2 StorageClass resource applied to newly created
clusters. ... You should reference the gp2 storage class by name" (Amazon EKS User
Guide, "Review release notes for Kubernetes versions on extended support", Kubernetes
1.30). A claim without `storageClassName` therefore stays Pending on a new EKS 1.32
cluster, with `FailedBinding` "no persistent volumes available for this claim and no
storage class is set", and so it does here: the sandbox finds that mistake before
staging does. A cluster that wants a default (an older cluster upgraded, or the
`aws-ebs-csi-driver` add-on with `defaultStorageClass.enabled`) annotates a class
`storageclass.kubernetes.io/is-default-class: "true"`; the sandbox honours that too.
"""

from __future__ import annotations

import copy
from typing import Any

from sandbox.kube.errors import ApiError
from sandbox.kube.storageadmission import STORAGE_CLASSES
from sandbox.kube.store import Store

KubeObject = dict[str, Any]

EKS_GP2: KubeObject = {
    "apiVersion": "storage.k8s.io/v1",
    "kind": "StorageClass",
    "metadata": {"name": "gp2"},
    "provisioner": "kubernetes.io/aws-ebs",
    "parameters": {"fsType": "ext4", "type": "gp2"},
    "reclaimPolicy": "Delete",
    "volumeBindingMode": "WaitForFirstConsumer",
}


def install(store: Store) -> None:
    """Create EKS's classes unless they exist (a class is never changed once there)."""
    for storage_class in (EKS_GP2,):
        if store.find(STORAGE_CLASSES, "", storage_class["metadata"]["name"]) is not None:
            continue
        try:
            store.create(STORAGE_CLASSES, copy.deepcopy(storage_class))
        except ApiError as error:
            if error.code != 409:
                raise
