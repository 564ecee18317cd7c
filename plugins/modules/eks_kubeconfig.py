#!/usr/bin/python
# Copyright: mlops.platform contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: eks_kubeconfig
short_description: Discover an existing EKS cluster and write a kubeconfig for it
version_added: 0.1.0
description:
  - Describes an EKS cluster by name with boto3, checks that it is C(ACTIVE) and that its
    Kubernetes version is in a supported range, and writes a one-context kubeconfig for it.
  - With O(auth=token) the credentials are a token generated with boto3 alone (a presigned STS
    C(GetCallerIdentity) request), so no AWS CLI is needed; the token expires after 15 minutes
    and is refreshed on every run without counting as a change. With O(auth=exec) the kubeconfig
    calls C(aws eks get-token) whenever a client needs credentials.
  - Never creates or deletes clusters.
author:
  - mlops.platform maintainers (@mlops-platform)
options:
  name:
    description: Name of the EKS cluster.
    type: str
    required: true
  kubeconfig:
    description: Path of the kubeconfig to write (mode 0600); its directory is created.
    type: path
    required: true
  context:
    description: Name of the context, cluster and user entries; defaults to O(name).
    type: str
  auth:
    description: How kubectl and the Kubernetes modules authenticate.
    type: str
    choices: [token, exec]
    default: token
  version_min:
    description: Lowest supported Kubernetes version, C(major.minor).
    type: str
    default: "1.27"
  version_max:
    description: Highest supported Kubernetes version, C(major.minor), inclusive.
    type: str
    default: "1.33"
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - Supports check mode and diff; the diff never shows the token.
"""

EXAMPLES = r"""
- name: Write a kubeconfig for the dev cluster
  mlops.platform.eks_kubeconfig:
    name: mlops-dev
    region: eu-west-1
    kubeconfig: ~/.cache/mlops-platform/mlops-dev.kubeconfig

- name: Use the AWS CLI for credentials instead of a static token
  mlops.platform.eks_kubeconfig:
    name: mlops-prod
    region: eu-west-1
    auth: exec
    profile: prod-admin
    kubeconfig: ~/.kube/mlops-prod
"""

RETURN = r"""
cluster:
  description: What EKS reports about the cluster.
  returned: success
  type: dict
  contains:
    name: {description: Cluster name., type: str, returned: success, sample: mlops-dev}
    arn: {description: Cluster ARN., type: str, returned: success, sample: "arn:aws:eks:eu-west-1:123456789012:cluster/mlops-dev"}
    status: {description: Cluster status., type: str, returned: success, sample: ACTIVE}
    version: {description: Kubernetes version., type: str, returned: success, sample: "1.33"}
    endpoint: {description: API server endpoint., type: str, returned: success, sample: "https://ABC.gr7.eu-west-1.eks.amazonaws.com"}
kubeconfig:
  description: Path of the kubeconfig.
  returned: success
  type: str
  sample: /root/.cache/mlops-platform/mlops-dev.kubeconfig
context:
  description: Context to use in the kubeconfig.
  returned: success
  type: str
  sample: mlops-dev
"""

import os
import tempfile

try:
    import botocore
except ImportError:
    pass  # AnsibleAWSModule reports the missing dependency

from ansible.module_utils.basic import missing_required_lib
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

try:
    import yaml

    HAS_YAML = True
except ImportError:
    HAS_YAML = False
from ansible_collections.mlops.platform.plugins.module_utils.eks import (
    EksError,
    check_cluster,
    presign_token,
    render_kubeconfig,
    user_entry,
    without_token,
)


def read_kubeconfig(path):
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as handle:
        try:
            return yaml.safe_load(handle)
        except yaml.YAMLError:
            return None


def write_kubeconfig(path, content):
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".kubeconfig-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yaml.safe_dump(content, handle, default_flow_style=False, sort_keys=False)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            kubeconfig=dict(type="path", required=True),
            context=dict(type="str"),
            auth=dict(type="str", choices=["token", "exec"], default="token"),
            version_min=dict(type="str", default="1.27"),
            version_max=dict(type="str", default="1.33"),
        ),
        supports_check_mode=True,
    )
    if not HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML"))
    name = module.params["name"]
    path = module.params["kubeconfig"]
    context = module.params["context"] or name
    region = module.region

    eks = module.client("eks")
    try:
        cluster = eks.describe_cluster(name=name)["cluster"]
    except botocore.exceptions.ClientError as err:
        code = err.response.get("Error", {}).get("Code", "")
        if code == "ResourceNotFoundException":
            module.fail_json(
                msg=f"EKS cluster {name!r} not found in region {region}: check cluster_name (the EKS name) and "
                "cluster_eks_region, or set cluster_eks_create: true to create it"
            )
        if code in ("AccessDeniedException", "UnrecognizedClientException", "ExpiredTokenException"):
            module.fail_json(
                msg=f"not allowed to describe EKS cluster {name!r} ({code}): the caller needs "
                "eks:DescribeCluster; check the AWS credentials or profile in use"
            )
        module.fail_json_aws(err, msg=f"could not describe EKS cluster {name!r}")
    except botocore.exceptions.BotoCoreError as err:
        module.fail_json_aws(err, msg=f"could not describe EKS cluster {name!r}")

    try:
        check_cluster(cluster, name, module.params["version_min"], module.params["version_max"])
    except EksError as err:
        module.fail_json(msg=str(err))

    token = None
    if module.params["auth"] == "token":
        token = presign_token(module.client("sts"), name)
    wanted = render_kubeconfig(cluster, context, user_entry(name, region, module.params["auth"], token,
                                                            module.params.get("profile")))
    current = read_kubeconfig(path)
    changed = without_token(current) != without_token(wanted)
    # A token is refreshed on every real run, but only a different configuration is a change.
    if not module.check_mode and (changed or token):
        write_kubeconfig(path, wanted)

    result = dict(
        changed=changed,
        kubeconfig=path,
        context=context,
        cluster={key: cluster.get(key) for key in ("name", "arn", "status", "version", "endpoint")},
    )
    if module._diff:
        result["diff"] = dict(
            before_header=path,
            after_header=path,
            before=yaml.safe_dump(without_token(current)) if current else "",
            after=yaml.safe_dump(without_token(wanted)),
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
