#!/usr/bin/python
# Copyright: mlops.platform maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: seldon_runtime
short_description: Manage a Seldon Core v2 SeldonRuntime and its Servers, checked against the namespace quota first
version_added: 0.1.0
description:
  - Creates, updates or deletes one C(SeldonRuntime) (C(mlops.seldon.io/v1alpha1)) in a team namespace and the
    C(Server) objects that run on it, with server-side apply under the field manager C(mlops.platform).
  - Before anything is sent, the parameters are validated (override names against the known components, replica
    counts, quantities) and the namespace must exist; a problem fails the task with a message that names the field
    and the fix, and nothing is written.
  - With O(preflight=true) (the default) the module works out what every enabled component container and every
    Server container will request and limit once the API server has defaulted it (the overrides merged over the
    SeldonConfig or ServerConfig in O(controller_namespace), requests copied from limits, LimitRange defaults filled
    in) and compares that with the namespace's LimitRanges and ResourceQuotas. A container that the quota admission
    would refuse (for example no C(limits.cpu) under a quota on C(limits.cpu)), a request above its limit, or totals
    over the quota fail the task before the apply, naming the component, container, resource, numbers and fix.
  - When the SeldonConfig or ServerConfig cannot be read, the preflight assumes the shape of the setup chart's
    defaults (requests and C(limits.memory), no C(limits.cpu)).
  - C(changed) compares the object before and after the apply (status and server bookkeeping left out), so a
    re-run with the same parameters reports no change.
  - All objects carry C(app.kubernetes.io/managed-by=mlops.platform), C(app.kubernetes.io/part-of=mlops-platform)
    and, with O(team), C(mlops.platform/team).
  - With O(runtimes), one call converges the runtime of many namespaces. Every runtime is validated, its
    namespace checked, its preflight computed and its apply dry-run before the first write; only the runtimes
    whose dry-run differs from the server's copy are written. A no-op over 100 namespaces is one module call.
  - Talks to the API server through the collection's own REST client (no kubernetes Python client import).
author:
  - mlops.platform maintainers (@mlops-platform)
requirements:
  - PyYAML >= 3.11
extends_documentation_fragment:
  - mlops.platform.kube
attributes:
  check_mode:
    support: full
    description: Sends the apply or delete as a server-side dry run, so the API server validates it and nothing is stored.
  diff_mode:
    support: full
    description: Before and after of the SeldonRuntime and the Servers.
options:
  name:
    description: Name of the SeldonRuntime.
    type: str
    required: true
  namespace:
    description: Namespace of the SeldonRuntime and its Servers; it must exist. Exactly one of O(namespace) and O(runtimes).
    type: str
  runtimes:
    description:
      - Many namespaces in one call, each with its own O(runtimes[].team) and optionally its own
        O(runtimes[].overrides) (the top-level O(overrides) otherwise). Exactly one of O(namespace) and O(runtimes).
    type: list
    elements: dict
    suboptions:
      namespace:
        description: Namespace of this runtime; it must exist.
        type: str
        required: true
      team:
        description: Team label of this runtime's objects.
        type: str
      overrides:
        description: Component overrides of this runtime, same keys as O(overrides) (unknown keys are refused).
        type: list
        elements: dict
      kafka:
        description:
          - This runtime's Kafka settings over O(config.kafka), same keys (for example its own
            C(consumer_group_id_prefix)); ignored when O(config.kafka) is not set.
        type: dict
  render_dir:
    description:
      - Also write the SeldonRuntime and Servers of every runtime, exactly as sent, to a numbered YAML file in this
        directory (see M(mlops.platform.k8s_bundle)); used by the benchmark. Not in check mode or with O(state=absent).
    type: path
  render_only:
    description:
      - GitOps render mode; validate and preflight every runtime, then write the SeldonRuntimes and Servers to
        O(render_dir) with M(mlops.platform.k8s_bundle)'s writer (the same checks and file format, file
        C(NNN-seldon-runtimes.yaml)) and send nothing; no cluster is contacted and the task reports no change.
        Written in check mode too (the render directory is the caller's scratch space).
      - The quota preflight reads the ResourceQuotas and LimitRanges already rendered into O(render_dir) (the
        team_isolation role renders before), not the cluster, with the setup chart's built-in resources as the base.
      - When the task does not set it, the variable C(mlops_render_only) decides, as for M(mlops.platform.k8s_bundle).
      - O(state=absent) fails (a runtime leaves the tree by leaving the inventory; the GitOps engine prunes it).
    type: bool
    default: false
  cluster_exists:
    description:
      - Set to C(false) in check mode before the cluster exists (see M(mlops.platform.k8s_bundle)). Every runtime is then
        reported as a creation and nothing is sent.
      - Outside check mode C(false) fails.
    type: bool
    default: true
  state:
    description:
      - V(present) applies the SeldonRuntime and the O(servers); V(absent) deletes them (Servers first).
    type: str
    default: present
    choices: [present, absent]
  seldon_config:
    description: Name of the SeldonConfig (in the controller namespace) the runtime is built from.
    type: str
    default: default
  overrides:
    description:
      - Per-component overrides of the SeldonConfig. Components not listed run with the SeldonConfig's settings
        (one replica).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description:
          - The component, one of V(hodometer), V(seldon-scheduler), V(seldon-envoy), V(seldon-dataflow-engine),
            V(seldon-modelgateway), V(seldon-pipelinegateway). Model servers are not components; see O(servers).
        type: str
        required: true
      replicas:
        description: Replica count (0 or more).
        type: int
      disable:
        description: Do not run the component at all.
        type: bool
      service_type:
        description: Type of the component's Service.
        type: str
        choices: [ClusterIP, NodePort, LoadBalancer]
      resources:
        description:
          - Requests and limits of the component's main container (C(scheduler), C(envoy), C(dataflow-engine),
            C(modelgateway), C(pipelinegateway), C(hodometer)), a mapping with C(requests) and C(limits) of
            resource quantities; written into the override's C(podSpec).
        type: dict
      pod_spec:
        description:
          - A partial PodSpec strategic-merged into the component's pod by the controller; containers are matched
            by name.
        type: dict
  config:
    description: Runtime configuration (C(spec.config)).
    type: dict
    suboptions:
      kafka:
        description: Kafka settings, needed for Pipelines (model gateway, pipeline gateway, dataflow engine).
        type: dict
        suboptions:
          bootstrap_servers:
            description: Kafka bootstrap servers, C(host:port[,host:port]).
            type: str
          topic_prefix:
            description: Prefix of the topics Seldon creates.
            type: str
          consumer_group_id_prefix:
            description: Prefix of the consumer group ids.
            type: str
          debug:
            description: librdkafka debug contexts.
            type: str
          consumer:
            description: Kafka consumer settings.
            type: dict
          producer:
            description: Kafka producer settings.
            type: dict
          streams:
            description: Kafka streams settings.
            type: dict
          topics:
            description: Topic settings (for example C(numPartitions), C(replicationFactor)).
            type: dict
      tracing:
        description: OpenTelemetry tracing.
        type: dict
        suboptions:
          disable:
            description: Turn tracing off.
            type: bool
          otel_exporter_endpoint:
            description: Collector endpoint, C(host:port).
            type: str
          otel_exporter_protocol:
            description: Exporter protocol.
            type: str
            choices: [grpc, http]
          ratio:
            description: Sampling ratio from 0 to 1.
            type: str
      rclone:
        description: Agent rclone configuration.
        type: dict
        suboptions:
          config_secrets:
            description: Names of Secrets holding rclone remotes for model storage.
            type: list
            elements: str
          config:
            description: Rclone remote definitions as JSON strings.
            type: list
            elements: str
      service:
        description: Services of the runtime.
        type: dict
        suboptions:
          grpc_service_prefix:
            description: Prefix of the gRPC service names.
            type: str
          service_type:
            description: Type of the runtime's Services.
            type: str
            choices: [ClusterIP, NodePort, LoadBalancer]
  disable_auto_update:
    description: Keep the controller from updating the runtime's components when the SeldonConfig changes.
    type: bool
    default: false
  servers:
    description: Servers (model servers) that run on this runtime, applied after it.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Name of the Server.
        type: str
        required: true
      server_config:
        description: ServerConfig in the controller namespace, V(mlserver) or V(triton) from the setup chart.
        type: str
        default: mlserver
      replicas:
        description: Replica count; the preflight counts one when unset.
        type: int
      min_replicas:
        description: Lower bound for autoscaling.
        type: int
      max_replicas:
        description: Upper bound for autoscaling.
        type: int
      capabilities:
        description: Replace the ServerConfig's capabilities.
        type: list
        elements: str
      extra_capabilities:
        description: Capabilities added to the ServerConfig's.
        type: list
        elements: str
      resources:
        description: Requests and limits of the server container (named after O(servers[].server_config)).
        type: dict
      pod_spec:
        description: A partial PodSpec merged into the Server's pod; containers are matched by name.
        type: dict
  team:
    description: Team that owns the namespace; sets the C(mlops.platform/team) label.
    type: str
  labels:
    description: Extra labels of the SeldonRuntime and the Servers; the platform's labels win.
    type: dict
    default: {}
  preflight:
    description: Check the pods against the namespace's LimitRanges and ResourceQuotas before applying.
    type: bool
    default: true
  controller_namespace:
    description: Namespace of the Seldon controller, where the SeldonConfig and ServerConfigs live.
    type: str
    default: seldon-system
  wait:
    description: After applying, wait until the runtime's C(Ready) condition is C(True) (not in check mode).
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait; on timeout the task fails listing the conditions that are not C(True).
    type: int
    default: 300
  wait_sleep:
    description: Seconds between two reads while waiting.
    type: int
    default: 5
notes:
  - The SeldonRuntime, Server, SeldonConfig and ServerConfig CRDs must be installed (the mlops.platform.seldon role
    installs them).
  - Servers the module no longer lists are not deleted; remove them with O(state=absent) or kubernetes.core.k8s.
seealso:
  - name: SeldonRuntime
    description: The resource this module manages.
    link: https://docs.seldon.ai/seldon-core-2/kubernetes/resources/seldonruntime
"""

EXAMPLES = r"""
- name: The seed 001 runtime of financial-ml, all six components at one replica, fitting its quota
  mlops.platform.seldon_runtime:
    name: financial-ml-runtime
    namespace: financial-ml
    team: financial-ml
    seldon_config: default
    overrides:
      - name: hodometer
        replicas: 1
      - name: seldon-scheduler
        replicas: 1
        resources:
          limits: {cpu: 500m, memory: 1Gi}
      - name: seldon-envoy
        replicas: 1
      - name: seldon-dataflow-engine
        replicas: 1
        resources:
          limits: {cpu: "1", memory: 1Gi}
      - name: seldon-modelgateway
        replicas: 1
      - name: seldon-pipelinegateway
        replicas: 1
    config:
      kafka:
        bootstrap_servers: seldon-kafka-bootstrap.kafka:9092
    servers:
      - name: mlserver
        replicas: 1
    kubeconfig: "{{ mlops_cluster.kubeconfig }}"
    wait: true
    wait_timeout: 600

- name: Without Kafka, the Kafka components are disabled
  mlops.platform.seldon_runtime:
    name: seldon
    namespace: financial-ml
    overrides:
      - {name: seldon-modelgateway, disable: true}
      - {name: seldon-pipelinegateway, disable: true}
      - {name: seldon-dataflow-engine, disable: true}
    servers:
      - name: mlserver

- name: Remove the runtime and its Servers
  mlops.platform.seldon_runtime:
    name: seldon
    namespace: financial-ml
    servers:
      - name: mlserver
    state: absent
"""

RETURN = r"""
runtime:
  description: The SeldonRuntime as the API server returned it (without status and bookkeeping); empty when absent.
  returned: always
  type: dict
  sample: {"apiVersion": "mlops.seldon.io/v1alpha1", "kind": "SeldonRuntime",
           "metadata": {"name": "seldon", "namespace": "financial-ml"}, "spec": {"seldonConfig": "default"}}
servers:
  description: The Servers as the API server returned them.
  returned: always
  type: list
  elements: dict
  sample: [{"kind": "Server", "metadata": {"name": "mlserver"}, "spec": {"serverConfig": "mlserver"}}]
preflight:
  description:
    - What the quota preflight computed; empty with O(preflight=false) or O(state=absent).
  returned: always
  type: dict
  contains:
    errors:
      description: Problems that stop the apply (the task fails when there is one).
      type: list
      elements: str
    warnings:
      description: Totals that fit the quota but not next to what already runs in the namespace.
      type: list
      elements: str
    totals:
      description: Requests, limits, pods and volume claims of all the runtime's pods together.
      type: dict
      sample: {"limits.cpu": "2500m", "pods": "5", "requests.cpu": "500m"}
    pods:
      description: The workloads counted, with their replicas.
      type: list
      elements: dict
    base:
      description: Where the base resources came from, C(SeldonConfig) or C(built-in chart defaults).
      type: str
  sample: {"errors": [], "warnings": [], "totals": {"pods": "4"}, "pods": [], "base": "SeldonConfig"}
conditions:
  description: The runtime's status conditions once it is Ready.
  returned: when O(wait=true) and the runtime became Ready
  type: list
  elements: dict
  sample: [{"type": "Ready", "status": "True"}]
runtimes:
  description: With O(runtimes), one result per namespace with C(namespace), C(changed), C(runtime), C(servers) and C(preflight).
  returned: when O(runtimes) is set
  type: list
  elements: dict
  sample: [{"namespace": "financial-ml", "changed": false, "runtime": {}, "servers": [], "preflight": {}}]
api_writes:
  description: Write requests sent to the API server (dry runs not counted); 0 when the task failed before any.
  returned: always
  type: int
  sample: 2
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mlops.platform.plugins.module_utils.kube import exit_module
from ansible_collections.mlops.platform.plugins.module_utils.seldon_task import ARGUMENT_SPEC, VALIDATOR_KWARGS, run_runtimes


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True, **VALIDATOR_KWARGS)
    exit_module(module, run_runtimes)


if __name__ == "__main__":
    main()
