# Copyright: mlops.platform contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Connection options of the modules built on module_utils/kube.py."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  kubeconfig:
    description: Path to the kubeconfig; C(KUBECONFIG), C(~/.kube/config) or the in-cluster service account otherwise.
    type: path
  context:
    description: The kubeconfig context; its current context otherwise.
    type: str
notes:
  - Talks to the API server with the collection's own REST client, not the kubernetes Python client. It supports
    C(certificate-authority), C(insecure-skip-tls-verify), C(tls-server-name), C(client-certificate)/C(client-key),
    tokens, C(tokenFile), basic auth and exec credential plugins (C(aws eks get-token)); C(auth-provider) users are
    refused. C(HTTPS_PROXY) and C(NO_PROXY) are honoured as kubectl honours them.
"""
