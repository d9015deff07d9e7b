"""pycni.policy.validate: the API server's rules and wording, Kubernetes' defaulting, all-or-nothing batches."""

from __future__ import annotations

from typing import Any

import pytest

from pycni.policy.model import (
    ContainerPort,
    IPBlock,
    LabelSelector,
    Namespace,
    NetworkPolicy,
    Pod,
    PolicyPeer,
    PolicyPort,
    PolicyRule,
    Requirement,
)
from pycni.policy.validate import ValidationError, to_model, validate_all

# apimachinery's messages, as the API server prints them (the double space after an example is theirs).
SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and "
    "end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
KEY_NAME_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for "
    "validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
CIDR_MSG = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
PROTOCOLS = 'supported values: "TCP", "UDP", "SCTP"'


def netpol(spec: dict[str, Any] | None = None, name: str = "deny", namespace: str | None = "x") -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    obj: dict[str, Any] = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": metadata}
    if spec is not None:
        obj["spec"] = spec
    return obj


def pod(spec: dict[str, Any] | None = None, name: str = "p", **metadata: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "x", **metadata}}
    if spec is not None:
        obj["spec"] = spec
    return obj


def namespace(name: str = "x", **metadata: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, **metadata}}


def ports(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"ingress": [{"ports": list(entries)}]}


def peers(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"ingress": [{"from": list(entries)}]}


def containers(*port_lists: list[dict[str, Any]]) -> dict[str, Any]:
    return {"containers": [{"name": f"c{i}", "image": "busybox", "ports": p} for i, p in enumerate(port_lists)]}


def error_of(obj: Any) -> str:
    with pytest.raises(ValidationError) as exc:
        to_model(obj)
    message = str(exc.value)
    assert "\n" not in message
    return message


# -- the exact one-line message ---------------------------------------------------------------------------------


def test_message_has_the_api_servers_shape() -> None:
    assert error_of(netpol(ports({"port": 70000}))) == (
        'NetworkPolicy "x/deny" is invalid: spec.ingress[0].ports[0].port: Invalid value: 70000: '
        "must be between 1 and 65535, inclusive"
    )


def test_several_errors_are_bracketed_on_one_line() -> None:
    message = error_of(netpol(ports({"port": 0}, {"protocol": "ICMP"}), name="Deny"))
    assert message == (
        f'NetworkPolicy "x/Deny" is invalid: [metadata.name: Invalid value: "Deny": {SUBDOMAIN_MSG}, '
        "spec.ingress[0].ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive, "
        f'spec.ingress[0].ports[1].protocol: Unsupported value: "ICMP": {PROTOCOLS}]'
    )


def test_error_carries_kind_name_and_field_errors() -> None:
    with pytest.raises(ValidationError) as exc:
        to_model(netpol(ports({"port": 0})))
    assert (exc.value.kind, exc.value.name, exc.value.index) == ("NetworkPolicy", "x/deny", None)
    assert [(e.type, e.field, e.value) for e in exc.value.errors] == [
        ("Invalid value", "spec.ingress[0].ports[0].port", 0)
    ]
    assert isinstance(exc.value, ValueError)


# -- invalid objects: one field error each, exact wording --------------------------------------------------------

INVALID: list[tuple[str, Any, str]] = [
    # kind and apiVersion
    ("kind missing", {"apiVersion": "v1", "metadata": {"name": "a"}}, 'object "a" is invalid: kind: Required value'),
    (
        "kind unknown",
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a"}},
        'Service "a" is invalid: kind: Unsupported value: "Service": '
        'supported values: "Namespace", "Pod", "NetworkPolicy", "AdminNetworkPolicy", "BaselineAdminNetworkPolicy"',
    ),
    (
        "apiVersion wrong",
        {**netpol(), "apiVersion": "extensions/v1beta1"},
        'NetworkPolicy "x/deny" is invalid: apiVersion: Unsupported value: "extensions/v1beta1": '
        'supported values: "networking.k8s.io/v1"',
    ),
    (
        "apiVersion missing",
        {"kind": "Namespace", "metadata": {"name": "a"}},
        'Namespace "a" is invalid: apiVersion: Required value',
    ),
    ("not a mapping", ["a"], 'object "" is invalid: <object>: Invalid value: ["a"]: must be a mapping'),
    # names
    (
        "name missing",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {}},
        'Namespace "" is invalid: metadata.name: Required value: name or generateName is required',
    ),
    (
        "metadata missing",
        {"apiVersion": "v1", "kind": "Namespace"},
        'Namespace "" is invalid: metadata.name: Required value: name or generateName is required',
    ),
    (
        "namespace name is a DNS label",
        namespace("a.b"),
        'Namespace "a.b" is invalid: metadata.name: Invalid value: "a.b": must not contain dots',
    ),
    (
        "namespace name charset",
        namespace("A"),
        f'Namespace "A" is invalid: metadata.name: Invalid value: "A": {LABEL_MSG}',
    ),
    (
        "namespace name length",
        namespace("a" * 64),
        f'Namespace "{"a" * 64}" is invalid: metadata.name: Invalid value: "{"a" * 64}": '
        "must be no more than 63 characters",
    ),
    (
        "policy name is a DNS subdomain",
        netpol(name="-deny"),
        f'NetworkPolicy "x/-deny" is invalid: metadata.name: Invalid value: "-deny": {SUBDOMAIN_MSG}',
    ),
    (
        "pod name is a DNS subdomain",
        pod(name="web_1"),
        f'Pod "x/web_1" is invalid: metadata.name: Invalid value: "web_1": {SUBDOMAIN_MSG}',
    ),
    (
        "object namespace is a DNS label",
        netpol(namespace="team.a"),
        'NetworkPolicy "team.a/deny" is invalid: metadata.namespace: Invalid value: "team.a": must not contain dots',
    ),
    (
        "name not a string",
        namespace(7),  # type: ignore[arg-type]
        'Namespace "" is invalid: metadata.name: Invalid value: 7: must be a string',
    ),
]

FIELD_INVALID: list[tuple[str, Any, str]] = [
    # labels
    ("label key name", namespace(labels={"-a": "b"}), f'metadata.labels: Invalid value: "-a": {KEY_NAME_MSG}'),
    (
        "label key prefix",
        namespace(labels={"Example.com/a": "b"}),
        f'metadata.labels: Invalid value: "Example.com/a": prefix part {SUBDOMAIN_MSG}',
    ),
    (
        "label key empty prefix",
        namespace(labels={"/a": "b"}),
        'metadata.labels: Invalid value: "/a": prefix part must be non-empty',
    ),
    (
        "label key name too long",
        namespace(labels={"a" * 64: "b"}),
        f'metadata.labels: Invalid value: "{"a" * 64}": name part must be no more than 63 characters',
    ),
    ("label value charset", pod(labels={"a": "b c"}), f'metadata.labels: Invalid value: "b c": {VALUE_MSG}'),
    (
        "label value too long",
        pod(labels={"a": "b" * 64}),
        f'metadata.labels: Invalid value: "{"b" * 64}": must be no more than 63 characters',
    ),
    ("label value not a string", pod(labels={"version": 1}), "metadata.labels: Invalid value: 1: must be a string"),
    ("labels not a mapping", pod(labels=["a"]), 'metadata.labels: Invalid value: ["a"]: must be an object'),
    # selectors
    (
        "In needs values",
        netpol({"podSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}),
        "spec.podSelector.matchExpressions[0].values: Required value: must be specified when `operator` is "
        "'In' or 'NotIn'",
    ),
    (
        "NotIn needs values",
        netpol({"podSelector": {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": []}]}}),
        "spec.podSelector.matchExpressions[0].values: Required value: must be specified when `operator` is "
        "'In' or 'NotIn'",
    ),
    (
        "Exists takes no values",
        netpol(
            peers({"namespaceSelector": {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["b"]}]}})
        ),
        "spec.ingress[0].from[0].namespaceSelector.matchExpressions[0].values: Forbidden: may not be specified "
        "when `operator` is 'Exists' or 'DoesNotExist'",
    ),
    (
        "DoesNotExist takes no values",
        netpol({"podSelector": {"matchExpressions": [{"key": "a", "operator": "DoesNotExist", "values": ["b"]}]}}),
        "spec.podSelector.matchExpressions[0].values: Forbidden: may not be specified "
        "when `operator` is 'Exists' or 'DoesNotExist'",
    ),
    (
        "unknown operator",
        netpol({"podSelector": {"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["b"]}]}}),
        'spec.podSelector.matchExpressions[0].operator: Invalid value: "Equals": not a valid selector operator',
    ),
    (
        "selector key",
        netpol({"podSelector": {"matchExpressions": [{"key": "a/b/c", "operator": "Exists"}]}}),
        'spec.podSelector.matchExpressions[0].key: Invalid value: "a/b/c": a valid label key '
        "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
        "character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
        "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' "
        "(e.g. 'example.com/MyName')",
    ),
    (
        "selector value",
        netpol({"podSelector": {"matchExpressions": [{"key": "a", "operator": "In", "values": ["ok", "no way"]}]}}),
        f'spec.podSelector.matchExpressions[0].values[1]: Invalid value: "no way": {VALUE_MSG}',
    ),
    (
        "matchLabels",
        netpol(peers({"podSelector": {"matchLabels": {"a": "-b"}}})),
        f'spec.ingress[0].from[0].podSelector.matchLabels: Invalid value: "-b": {VALUE_MSG}',
    ),
    # ports
    (
        "protocol",
        netpol(ports({"protocol": "ICMP", "port": 1})),
        f'spec.ingress[0].ports[0].protocol: Unsupported value: "ICMP": {PROTOCOLS}',
    ),
    (
        "protocol is case sensitive",
        netpol({"egress": [{"ports": [{"protocol": "tcp"}]}]}),
        f'spec.egress[0].ports[0].protocol: Unsupported value: "tcp": {PROTOCOLS}',
    ),
    (
        "port zero",
        netpol(ports({"port": 0})),
        "spec.ingress[0].ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
    ),
    (
        "port too big",
        netpol({"egress": [{"ports": [{"port": 65536}]}]}),
        "spec.egress[0].ports[0].port: Invalid value: 65536: must be between 1 and 65535, inclusive",
    ),
    (
        "port name too long",
        netpol(ports({"port": "a-very-long-name"})),
        'spec.ingress[0].ports[0].port: Invalid value: "a-very-long-name": must be no more than 15 characters',
    ),
    (
        "port name upper case",
        netpol(ports({"port": "Http"})),
        'spec.ingress[0].ports[0].port: Invalid value: "Http": '
        "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
    ),
    (
        "port name digits only",
        netpol(ports({"port": "8080"})),
        'spec.ingress[0].ports[0].port: Invalid value: "8080": must contain at least one letter (a-z)',
    ),
    (
        "port name double hyphen",
        netpol(ports({"port": "a--b"})),
        'spec.ingress[0].ports[0].port: Invalid value: "a--b": must not contain consecutive hyphens',
    ),
    (
        "port name edge hyphen",
        netpol(ports({"port": "http-"})),
        'spec.ingress[0].ports[0].port: Invalid value: "http-": must not begin or end with a hyphen',
    ),
    (
        "port neither int nor string",
        netpol(ports({"port": 80.5})),
        "spec.ingress[0].ports[0].port: Invalid value: 80.5: must be an integer or a string",
    ),
    (
        "endPort below port",
        netpol(ports({"port": 100, "endPort": 99})),
        "spec.ingress[0].ports[0].endPort: Invalid value: 99: must be greater than or equal to `port`",
    ),
    (
        "endPort too big",
        netpol(ports({"port": 100, "endPort": 65536})),
        "spec.ingress[0].ports[0].endPort: Invalid value: 65536: must be between 1 and 65535, inclusive",
    ),
    (
        "endPort with named port",
        netpol(ports({"port": "http", "endPort": 90})),
        "spec.ingress[0].ports[0].endPort: Invalid value: 90: may not be specified when `port` is non-numeric",
    ),
    (
        "endPort without port",
        netpol(ports({"endPort": 90})),
        "spec.ingress[0].ports[0].endPort: Invalid value: 90: may not be specified when `port` is not specified",
    ),
    (
        "endPort not an integer",
        netpol(ports({"port": 80, "endPort": "90"})),
        'spec.ingress[0].ports[0].endPort: Invalid value: "90": must be an integer',
    ),
    # peers and ipBlock
    ("empty peer", netpol(peers({})), "spec.ingress[0].from[0]: Required value: must specify a peer"),
    (
        "ipBlock with a selector",
        netpol({"egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "namespaceSelector": {}}]}]}),
        "spec.egress[0].to[0]: Forbidden: may not specify both ipBlock and another peer",
    ),
    ("cidr missing", netpol(peers({"ipBlock": {}})), "spec.ingress[0].from[0].ipBlock.cidr: Required value"),
    (
        "cidr garbage",
        netpol(peers({"ipBlock": {"cidr": "10.0.0.0"}})),
        f'spec.ingress[0].from[0].ipBlock.cidr: Invalid value: "10.0.0.0": {CIDR_MSG}',
    ),
    (
        "cidr prefix too long",
        netpol(peers({"ipBlock": {"cidr": "10.0.0.0/33"}})),
        f'spec.ingress[0].from[0].ipBlock.cidr: Invalid value: "10.0.0.0/33": {CIDR_MSG}',
    ),
    (
        "cidr netmask form",
        netpol(peers({"ipBlock": {"cidr": "10.0.0.0/255.0.0.0"}})),
        f'spec.ingress[0].from[0].ipBlock.cidr: Invalid value: "10.0.0.0/255.0.0.0": {CIDR_MSG}',
    ),
    (
        "cidr host bits",
        netpol(peers({"ipBlock": {"cidr": "10.0.0.1/8"}})),
        'spec.ingress[0].from[0].ipBlock.cidr: Invalid value: "10.0.0.1/8": '
        "must not have bits set beyond the prefix length",
    ),
    (
        "cidr leading zeros",
        netpol(peers({"ipBlock": {"cidr": "010.0.0.0/8"}})),
        'spec.ingress[0].from[0].ipBlock.cidr: Invalid value: "010.0.0.0/8": '
        "must not have leading 0s in IP or prefix length",
    ),
    (
        "cidr ipv4-mapped",
        netpol(peers({"ipBlock": {"cidr": "::ffff:10.0.0.0/104"}})),
        'spec.ingress[0].from[0].ipBlock.cidr: Invalid value: "::ffff:10.0.0.0/104": '
        "must not have an IPv4-mapped IPv6 address",
    ),
    (
        "except outside cidr",
        netpol(peers({"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.1.0.0/24"]}})),
        'spec.ingress[0].from[0].ipBlock.except[0]: Invalid value: "10.1.0.0/24": must be a strict subset of `cidr`',
    ),
    (
        "except equal to cidr",
        netpol(peers({"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.0.1.0/24", "10.0.0.0/16"]}})),
        'spec.ingress[0].from[0].ipBlock.except[1]: Invalid value: "10.0.0.0/16": must be a strict subset of `cidr`',
    ),
    (
        "except other family",
        netpol(peers({"ipBlock": {"cidr": "0.0.0.0/0", "except": ["fd00::/8"]}})),
        'spec.ingress[0].from[0].ipBlock.except[0]: Invalid value: "fd00::/8": must be a strict subset of `cidr`',
    ),
    (
        "except not a CIDR",
        netpol(peers({"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0"]}})),
        f'spec.ingress[0].from[0].ipBlock.except[0]: Invalid value: "10.1.0.0": {CIDR_MSG}',
    ),
    # policyTypes
    (
        "policyType unknown",
        netpol({"policyTypes": ["ingress"]}),
        'spec.policyTypes[0]: Unsupported value: "ingress": supported values: "Ingress", "Egress"',
    ),
    (
        "policyType repeated",
        netpol({"policyTypes": ["Egress", "Egress"]}),
        'spec.policyTypes[1]: Duplicate value: "Egress"',
    ),
    (
        "too many policyTypes",
        netpol({"policyTypes": ["Ingress", "Egress", "Ingress"]}),
        'spec.policyTypes: Invalid value: ["Ingress", "Egress", "Ingress"]: may not specify more than two policyTypes',
    ),
    # shapes
    (
        "spec.ingress not a list",
        netpol({"ingress": {"from": []}}),
        'spec.ingress: Invalid value: {"from": []}: must be a list',
    ),
    ("spec not an object", netpol("x"), 'spec: Invalid value: "x": must be an object'),  # type: ignore[arg-type]
    # Pod
    (
        "containerPort missing",
        pod(containers([{"name": "http"}])),
        "spec.containers[0].ports[0].containerPort: Required value",
    ),
    (
        "containerPort range",
        pod(containers([{"containerPort": 70000}])),
        "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
    ),
    (
        "container protocol",
        pod(containers([{"containerPort": 80, "protocol": "ICMP"}])),
        'spec.containers[0].ports[0].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"',
    ),
    (
        "container port name",
        pod(containers([{"containerPort": 80, "name": "Http"}])),
        'spec.containers[0].ports[0].name: Invalid value: "Http": '
        "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
    ),
    (
        "container port names unique in the pod",
        pod(containers([{"containerPort": 80, "name": "http"}], [{"containerPort": 8080, "name": "http"}])),
        'spec.containers[1].ports[0].name: Duplicate value: "http"',
    ),
    ("hostNetwork", pod({"hostNetwork": "yes"}), 'spec.hostNetwork: Invalid value: "yes": must be a boolean'),
    (
        "pod IP",
        pod() | {"status": {"podIP": "10.0.0.300"}},
        'status.podIP: Invalid value: "10.0.0.300": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)',
    ),
]


@pytest.mark.parametrize(("case", "obj", "message"), INVALID, ids=[case for case, _, _ in INVALID])
def test_invalid_object(case: str, obj: Any, message: str) -> None:
    assert error_of(obj) == message


@pytest.mark.parametrize(("case", "obj", "field_error"), FIELD_INVALID, ids=[case for case, _, _ in FIELD_INVALID])
def test_invalid_field(case: str, obj: Any, field_error: str) -> None:
    message = error_of(obj)
    assert message.split(" is invalid: ", 1)[1] == field_error


# -- valid objects and Kubernetes' defaulting --------------------------------------------------------------------

EVERYTHING = LabelSelector()
TCP_80 = PolicyPort("TCP", 80)


def policy(**fields: Any) -> NetworkPolicy:
    base: dict[str, Any] = {
        "namespace": "x",
        "name": "deny",
        "pod_selector": EVERYTHING,
        "policy_types": frozenset({"Ingress"}),
    }
    return NetworkPolicy(**(base | fields))


VALID: list[tuple[str, dict[str, Any], Any]] = [
    ("default deny ingress", netpol({"podSelector": {}}), policy()),
    ("spec absent", netpol(), policy()),
    ("podSelector null", netpol({"podSelector": None}), policy()),
    ("ingress empty list", netpol({"ingress": []}), policy()),
    ("ingress [{}] allows all", netpol({"ingress": [{}]}), policy(ingress=(PolicyRule(),))),
    (
        "egress rules add Egress",
        netpol({"egress": [{}]}),
        policy(policy_types=frozenset({"Ingress", "Egress"}), egress=(PolicyRule(),)),
    ),
    ("egress [] adds nothing", netpol({"egress": []}), policy()),
    ("explicit Egress only", netpol({"policyTypes": ["Egress"]}), policy(policy_types=frozenset({"Egress"}))),
    (
        "explicit both",
        netpol({"policyTypes": ["Egress", "Ingress"]}),
        policy(policy_types=frozenset({"Ingress", "Egress"})),
    ),
    ("policyTypes [] defaults", netpol({"policyTypes": []}), policy()),
    ("protocol defaults to TCP", netpol(ports({"port": 80})), policy(ingress=(PolicyRule(ports=(TCP_80,)),))),
    (
        "protocol null is TCP",
        netpol(ports({"port": 80, "protocol": None})),
        policy(ingress=(PolicyRule(ports=(TCP_80,)),)),
    ),
    (
        "SCTP accepted",
        netpol(ports({"protocol": "SCTP", "port": 9999}, {"protocol": "UDP"})),
        policy(ingress=(PolicyRule(ports=(PolicyPort("SCTP", 9999), PolicyPort("UDP"))),)),
    ),
    (
        "named port and range",
        netpol(ports({"port": "http"}, {"port": 1000, "endPort": 2000}, {"port": 7, "endPort": 7})),
        policy(
            ingress=(
                PolicyRule(ports=(PolicyPort("TCP", "http"), PolicyPort("TCP", 1000, 2000), PolicyPort("TCP", 7, 7))),
            )
        ),
    ),
    ("ports and from null", netpol({"ingress": [{"ports": None, "from": None}]}), policy(ingress=(PolicyRule(),))),
    (
        "pod and namespace selector in one peer",
        netpol(peers({"podSelector": {"matchLabels": {"app": "db"}}, "namespaceSelector": {}})),
        policy(
            ingress=(
                PolicyRule(
                    peers=(PolicyPeer(pod_selector=LabelSelector((("app", "db"),)), namespace_selector=EVERYTHING),)
                ),
            )
        ),
    ),
    (
        "selector values are a sorted set",
        netpol({"podSelector": {"matchExpressions": [{"key": "a", "operator": "In", "values": ["c", "b", "c"]}]}}),
        policy(pod_selector=LabelSelector(match_expressions=(Requirement("a", "In", ("b", "c")),))),
    ),
    (
        "selector with every operator",
        netpol(
            {
                "podSelector": {
                    "matchLabels": {"app": "web", "example.com/tier": ""},
                    "matchExpressions": [
                        {"key": "a", "operator": "NotIn", "values": ["x"]},
                        {"key": "b", "operator": "Exists"},
                        {"key": "c", "operator": "DoesNotExist", "values": []},
                    ],
                }
            }
        ),
        policy(
            pod_selector=LabelSelector(
                (("app", "web"), ("example.com/tier", "")),
                (Requirement("a", "NotIn", ("x",)), Requirement("b", "Exists"), Requirement("c", "DoesNotExist")),
            )
        ),
    ),
    (
        "ipBlock v4 and v6 with except",
        netpol(
            {
                "egress": [
                    {
                        "to": [
                            {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "10.1.2.3/32"]}},
                            {"ipBlock": {"cidr": "fd00::/8", "except": ["fd00:1::/32"]}},
                        ]
                    }
                ]
            }
        ),
        policy(
            policy_types=frozenset({"Ingress", "Egress"}),
            egress=(
                PolicyRule(
                    peers=(
                        PolicyPeer(ip_block=IPBlock("0.0.0.0/0", ("10.0.0.0/8", "10.1.2.3/32"))),
                        PolicyPeer(ip_block=IPBlock("fd00::/8", ("fd00:1::/32",))),
                    )
                ),
            ),
        ),
    ),
    ("name may have dots", netpol(name="allow.web"), policy(name="allow.web")),
    (
        "policy labels kept",
        {**netpol(), "metadata": {"name": "deny", "namespace": "x", "labels": {"team": "a"}}},
        policy(labels=(("team", "a"),)),
    ),
    ("namespace defaults", netpol(namespace=None), policy(namespace="default")),
    (
        "unknown fields ignored",
        {
            **netpol({"podSelector": {}, "futureField": 1, "ingress": [{"extra": True}]}),
            "status": {},
            "metadata": {"name": "deny", "namespace": "x", "annotations": {"a": "b"}, "uid": "u"},
        },
        policy(ingress=(PolicyRule(),)),
    ),
    (
        "namespace gets its name label",
        namespace("team-a", labels={"env": "prod"}),
        Namespace("team-a", (("env", "prod"), ("kubernetes.io/metadata.name", "team-a"))),
    ),
    (
        "the name label cannot be spoofed",
        namespace("team-a", labels={"kubernetes.io/metadata.name": "team-b"}),
        Namespace("team-a", (("kubernetes.io/metadata.name", "team-a"),)),
    ),
    (
        "namespace's own namespace ignored",
        namespace("a", namespace="b"),
        Namespace("a", (("kubernetes.io/metadata.name", "a"),)),
    ),
    ("label value may be empty or null", pod(labels={"a": "", "b": None}), Pod("x", "p", (("a", ""), ("b", "")))),
    ("pod without spec", pod(), Pod("x", "p")),
    (
        "pod ports across containers",
        pod(
            containers(
                [{"containerPort": 80, "name": "http"}, {"containerPort": 53, "protocol": "UDP"}],
                [{"containerPort": 9999, "protocol": "SCTP", "name": "sctp"}],
            )
            | {"hostNetwork": False, "restartPolicy": "Always"},
            labels={"app": "web"},
        ),
        Pod(
            "x",
            "p",
            (("app", "web"),),
            (ContainerPort(80, "TCP", "http"), ContainerPort(53, "UDP"), ContainerPort(9999, "SCTP", "sctp")),
        ),
    ),
    ("hostNetwork pod", pod({"hostNetwork": True}), Pod("x", "p", host_network=True)),
    (
        "node and IPs of a running pod",
        pod({"nodeName": "node-1"})
        | {"status": {"podIP": "10.1.0.5", "podIPs": [{"ip": "10.1.0.5"}, {"ip": "fd00::5"}]}},
        Pod("x", "p", node="node-1", ips=("10.1.0.5", "fd00::5")),
    ),
    ("podIP alone", pod() | {"status": {"podIP": "10.1.0.5"}}, Pod("x", "p", ips=("10.1.0.5",))),
]


@pytest.mark.parametrize(("case", "obj", "model"), VALID, ids=[case for case, _, _ in VALID])
def test_valid_object(case: str, obj: dict[str, Any], model: Any) -> None:
    assert to_model(obj) == model


def test_to_model_does_not_change_its_input() -> None:
    obj = namespace("a", labels={"env": "prod"})
    to_model(obj)
    assert obj == namespace("a", labels={"env": "prod"})


# -- validate_all: all or nothing ----------------------------------------------------------------------------------


def test_validate_all_returns_every_model_in_order() -> None:
    assert validate_all([namespace("x"), pod(), netpol()]) == [
        Namespace("x", (("kubernetes.io/metadata.name", "x"),)),
        Pod("x", "p"),
        policy(),
    ]


def test_validate_all_reports_the_first_invalid_object_with_its_position() -> None:
    objs = [namespace("x"), netpol(ports({"port": 70000})), pod(name="Bad")]
    with pytest.raises(ValidationError) as exc:
        validate_all(objs)
    assert str(exc.value) == (
        'document 2: NetworkPolicy "x/deny" is invalid: spec.ingress[0].ports[0].port: Invalid value: 70000: '
        "must be between 1 and 65535, inclusive"
    )
    assert exc.value.index == 2


def test_validate_all_of_nothing() -> None:
    assert validate_all([]) == []


def test_except_is_checked_even_when_cidr_has_host_bits() -> None:
    message = error_of(netpol(peers({"ipBlock": {"cidr": "10.0.0.1/16", "except": ["11.0.0.0/24"]}})))
    assert message.split(" is invalid: ", 1)[1] == (
        '[spec.ingress[0].from[0].ipBlock.cidr: Invalid value: "10.0.0.1/16": '
        "must not have bits set beyond the prefix length, "
        'spec.ingress[0].from[0].ipBlock.except[0]: Invalid value: "11.0.0.0/24": must be a strict subset of `cidr`]'
    )


def test_field_error_renders_go_values() -> None:
    from pycni.policy.fielderror import FieldError

    assert str(FieldError("Invalid value", "a", True, "d")) == "a: Invalid value: true: d"
    assert str(FieldError("Invalid value", "a", None, "d")) == "a: Invalid value: null: d"
    assert str(FieldError("Invalid value", "a", 'say "hi"', "d")) == 'a: Invalid value: "say \\"hi\\"": d'
    assert str(FieldError("Required value", "a")) == "a: Required value"
    assert str(FieldError("Forbidden", "a", detail="no")) == "a: Forbidden: no"


def test_validate_all_places_the_error_where_it_was_written() -> None:
    from pycni.policy.manifest import load_located

    text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n---\nkind: List\nitems: [{kind: Pod, metadata: {}}]\n"
    located = load_located(text, "app.yaml")
    with pytest.raises(ValidationError) as exc:
        validate_all([obj for _, obj in located], where=[where for where, _ in located])
    assert str(exc.value) == (
        'app.yaml: document 2: items[0]: Pod "default/" is invalid: '
        "[apiVersion: Required value, metadata.name: Required value: name or generateName is required]"
    )
    assert (exc.value.index, exc.value.where) == (2, "app.yaml: document 2: items[0]")
