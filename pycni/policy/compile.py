"""NetworkPolicy to nftables: the table one node should hold, recompiled at the cost of what changed.

Contract: ``compile_node(view)`` is a pure function of the view: every
named object of pycni's one table (``inet pycni_policy``, see
``pycni.policy.ruleset``). ``Compiler`` gives the same answers for a
sequence of views while keeping what did not change: policy chains until
the policy changes, set members until a pod they depend on changes (the
agent keeps one; a property test holds it to ``compile_node``).
``pycni.policy.nftdiff`` turns two rulesets into the smallest transaction.

Layout (docs/DESIGN.md "NetworkPolicy" says why):

- ``egress`` and ``ingress`` are separate base chains on the ``forward``
  hook, egress first: ``accept`` in one still leaves the other to judge.
  Each passes established/related packets and IPv6 neighbour discovery,
  then dispatches on the pod's IP through a verdict map (``egress_v4``:
  local pod IP -> ``goto`` its chain). A pod with no element is not
  isolated in that direction.
- Nothing hooks ``input`` or ``output``: traffic between a pod and its own
  node is always allowed (Kubernetes says so; probes depend on it). Remote
  nodes get no exemption: their addresses are not pods, only ipBlocks
  match them.
- ``pod_<h>_in|eg``: one chain per isolated local pod and direction, the
  union of the policies that isolate it: a jump to each policy's chain,
  then a rate-limited NFLOG (group 2) and a counted drop whose comment
  names the isolating policies.
- ``pol_<h>_in|eg``: one chain per policy and direction, shared by every
  local pod it selects (``pycni.policy.policy_rules``).
- ``peer_<h>_*`` (pod IPs a peer selects, shared by every policy with that
  peer), ``cidr_<h>_*`` (an ipBlock minus its exceptions, interval),
  ``nport_<h>_*`` (``ip . proto . port`` of a named port per destination pod).
- Admin tiers (``pycni.policy.admin_rules``): a pod some AdminNetworkPolicy
  selects first jumps to ``anpt_<h>_in|eg``, the chain of exactly the ANPs
  that select it, in priority order (Allow accepts, Deny drops, Pass
  returns); then its NetworkPolicies as above; or, when none isolates it in
  that direction and the BaselineAdminNetworkPolicy selects it, a jump to
  ``banp_in|eg``. Falling off the pod's chain allows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pycni.policy.admin_match import admin_order, rules_of
from pycni.policy.admin_model import AdminNetworkPolicy, BaselineAdminNetworkPolicy, TierPolicy
from pycni.policy.admin_rules import baseline_chain_name, render_tier_chain, tier_chain_name
from pycni.policy.membership import Membership, PeerKey, PodChanges
from pycni.policy.model import Direction, Namespace, NetworkPolicy, Pod
from pycni.policy.policy_rules import (
    CidrSet,
    FromAll,
    FromBlock,
    FromPeer,
    FromSelected,
    NamedPortSet,
    PeerSet,
    SetSpec,
    ip_in_block,
    nft_comment,
    render_policy_chain,
    subtract,
)
from pycni.policy.ruleset import (
    ADDR_TYPE,
    FAMILIES,
    FAMILY,
    TABLE,
    Chain,
    Fam,
    Map,
    Ruleset,
    Set,
    ip_family,
    pod_chain_name,
    policy_chain_name,
)

__all__ = [
    "FAMILY",
    "LOG_GROUP",
    "TABLE",
    "Compiler",
    "NodeView",
    "compile_node",
    "pod_chain_name",
    "policy_chain_name",
]

LOG_GROUP = 2
LOG_RATE = "limit rate 10/second burst 20 packets"
# Router/neighbour solicitation and advertisement, redirect: IPv6 is dead without them.
ND_TYPES = "{ nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, nd-redirect }"


@dataclass(frozen=True)
class NodeView:
    """What one node's agent knows: the cluster's objects and which node it is.

    ``pods`` are every pod with an endpoint anywhere (IPs and node set);
    pods without IPs cannot be matched and are ignored. ``pod_changes``
    (optional, from a source that tracks them) lets an incremental
    ``Compiler`` find the changed pods without a pass over all of them;
    the ruleset never depends on it.
    """

    node: str
    namespaces: Mapping[str, Namespace]
    pods: Sequence[Pod]
    policies: Sequence[NetworkPolicy]
    admin_policies: Sequence[AdminNetworkPolicy] = ()
    baseline: BaselineAdminNetworkPolicy | None = None
    pod_changes: PodChanges | None = field(default=None, compare=False)


def _base_chains() -> dict[str, Chain]:
    chains = {}
    for name, priority, side in (("egress", -2, "saddr"), ("ingress", -1, "daddr")):
        chains[name] = Chain(name, (
            "ct state established,related accept",
            f"icmpv6 type {ND_TYPES} accept",
            f"ip {side} vmap @{name}_v4",
            f"ip6 {side} vmap @{name}_v6",
        ), hook=f"type filter hook forward priority {priority}; policy accept;")
    return chains


_BASE = _base_chains()


# What a pod's chain is made of: its NetworkPolicies, its ANP tier chain, its baseline chain (or "").
PodTiers = tuple[tuple[str, ...], str, str]


def _pod_chain(pod: Pod, direction: Direction, tiers: PodTiers) -> Chain:
    policies, tier_chain, baseline_chain = tiers
    rules = [f"jump {tier_chain}"] if tier_chain else []
    if policies:
        rules += [f"jump {policy_chain_name(key, direction)}" for key in policies]
        flag = "I" if direction == "Ingress" else "E"
        rules.append(f'{LOG_RATE} log prefix "pycni D {flag} {pod.key} " group {LOG_GROUP}')
        why = f"{pod.key} isolated for {direction.lower()} by {', '.join(policies)}"
        rules.append(f'counter drop comment "{nft_comment(why)}"')
    elif baseline_chain:
        rules.append(f"jump {baseline_chain}")
    return Chain(pod_chain_name(pod.key, direction), tuple(rules))


def _peer_key(spec: PeerSet | FromPeer) -> PeerKey:
    return (spec.scope, spec.pod_selector, spec.namespace_selector)


def _dependency(spec: SetSpec) -> tuple[str, PeerKey | str | None]:
    """What a set's members are computed from: ("cidr", None), ("peer", its PeerKey), ("selected", the
    policy key whose selected pods carry the named port) or ("pods", None) for all pods or a block's."""
    if isinstance(spec, CidrSet):
        return "cidr", None
    source = spec if isinstance(spec, PeerSet) else spec.source
    if isinstance(source, PeerSet | FromPeer):
        return "peer", _peer_key(source)
    if isinstance(source, FromSelected):
        return "selected", source.policy_key
    return "pods", None


def _named_port_elements(pods: Sequence[Pod], spec: NamedPortSet) -> frozenset[str]:
    # An admin named port has no protocol of its own (""): each container port's counts.
    return frozenset(
        f"{ip} . {cp.protocol.lower()} . {cp.container_port}"
        for pod in pods for cp in pod.ports
        if cp.name == spec.port_name and spec.protocol in ("", cp.protocol)
        for ip in pod.ips if ip_family(ip) == spec.fam
    )


_CachedChain = tuple[NetworkPolicy, tuple[Fam, ...], Chain, tuple[SetSpec, ...]]
Isolating = dict[tuple[str, Direction], list[str]]


class Compiler:
    """``compile_node`` with memory: feed it successive views of one node."""

    def __init__(self) -> None:
        self.m = Membership()
        # Caches are keyed by name and checked by identity: hashing a whole policy costs more than rendering it.
        self._chains: dict[tuple[str, Direction], _CachedChain] = {}
        self._pod_chains: dict[tuple[str, Direction], tuple[Pod, PodTiers, Chain]] = {}
        self._tier_chains: dict[str, tuple[tuple[TierPolicy, ...], tuple[Fam, ...], Chain, tuple[SetSpec, ...]]] = {}
        # set name -> (what its members were computed from, the set)
        self._sets: dict[str, tuple[object, Set]] = {}
        self._set_deps: dict[str, tuple[str, PeerKey | str | None]] = {}  # set name -> _dependency(its spec)
        self._selected: dict[str, tuple[NetworkPolicy, list[Pod]]] = {}
        # the NetworkPolicy part of the last compile, reused while no policy and no local pod changed
        self._section: tuple[tuple[Fam, ...], Isolating, dict[str, Pod], dict[str, Chain],
                             dict[str, SetSpec]] | None = None

    def compile(self, view: NodeView) -> Ruleset:
        changed = self.m.update(view.node, view.namespaces, view.pods, view.pod_changes)
        families = self.m.families
        policies = sorted(view.policies, key=lambda p: p.key)
        selected_by, same = self._selected_by(policies, changed)
        if not same or self._section is None or self._section[0] != families:
            self._section = (families, *self._policy_section(policies, selected_by, families))
        # copies: the admin tiers add to them; the section is kept as NetworkPolicy left it
        _, kept_isolating, kept_local, kept_chains, kept_specs = self._section
        isolating, local, chains, specs = dict(kept_isolating), dict(kept_local), dict(kept_chains), dict(kept_specs)
        tiers = self._admin_tiers(view, families, selected_by, local, chains, specs)

        vmaps: dict[str, dict[str, str]] = {f"{d}_{f}": {} for d in ("ingress", "egress") for f in FAMILIES}
        pod_chains: dict[tuple[str, Direction], tuple[Pod, PodTiers, Chain]] = {}
        for pod_key, direction in sorted(isolating.keys() | tiers.keys()):
            tier_chain, baseline_chain = tiers.get((pod_key, direction), ("", ""))
            by = (tuple(isolating.get((pod_key, direction), ())), tier_chain, baseline_chain)
            if not by[0] and not tier_chain and not baseline_chain:
                continue
            pod = local[pod_key]
            entry = self._pod_chains.get((pod_key, direction))
            if entry is None or entry[0] is not pod or entry[1] != by:
                entry = (pod, by, _pod_chain(pod, direction, by))
            pod_chains[(pod_key, direction)] = entry
            chain = entry[2]
            chains[chain.name] = chain
            for ip in pod.ips:
                vmaps[f"{direction.lower()}_{ip_family(ip)}"][ip] = f"goto {chain.name}"
        self._pod_chains = pod_chains

        sets = self._sets_of(specs, changed, selected_by, same)
        self._sets = {name: self._sets[name] for name in sets}
        self.m.forget_peers_except({key for kind, key in map(self._set_deps.__getitem__, specs)
                                    if kind == "peer" and isinstance(key, tuple)})
        maps = {
            name: Map(name, f"{ADDR_TYPE['v6' if name.endswith('v6') else 'v4']} : verdict",
                      tuple(sorted(elements.items())))
            for name, elements in vmaps.items()
        }
        return Ruleset(sets=sets, maps=maps, chains=chains)

    def _admin_tiers(self, view: NodeView, families: tuple[Fam, ...], selected_by: dict[str, list[Pod]],
                     local: dict[str, Pod], chains: dict[str, Chain],
                     specs: dict[str, SetSpec]) -> dict[tuple[str, Direction], tuple[str, str]]:
        """The ANP tier chain and baseline chain (names, "" for none) of each local pod and direction."""
        directions: tuple[Direction, ...] = ("Ingress", "Egress")
        by_pod: dict[tuple[str, Direction], list[TierPolicy]] = {}
        for policy in admin_order(view.admin_policies):
            subjects = self.m.local_subjects(policy.subject)
            selected_by[policy.key] = subjects
            for direction in directions:
                if rules_of(policy, direction):
                    for pod in subjects:
                        local[pod.key] = pod
                        by_pod.setdefault((pod.key, direction), []).append(policy)
        wanted: dict[str, tuple[tuple[TierPolicy, ...], Direction]] = {}
        out: dict[tuple[str, Direction], tuple[str, str]] = {}
        for (pod_key, direction), policies in by_pod.items():
            name = tier_chain_name([p.key for p in policies], direction)
            wanted[name] = (tuple(policies), direction)
            out[(pod_key, direction)] = (name, "")
        baseline = view.baseline
        if baseline is not None:
            subjects = self.m.local_subjects(baseline.subject)
            selected_by[baseline.key] = subjects
            for direction in directions:
                if rules_of(baseline, direction) and subjects:
                    name = baseline_chain_name(direction)
                    wanted[name] = ((baseline,), direction)
                    for pod in subjects:
                        local[pod.key] = pod
                        out[(pod.key, direction)] = (out.get((pod.key, direction), ("", ""))[0], name)
        tier_cache = {}
        for name, (members, direction) in sorted(wanted.items()):
            cached = self._tier_chains.get(name)
            if cached is None or cached[1] != families or not _same_objects(cached[0], members):
                cached = (members, families, *render_tier_chain(name, members, direction, families, LOG_RATE,
                                                                 LOG_GROUP))
            tier_cache[name] = cached
            chains[name] = cached[2]
            specs.update((spec.name, spec) for spec in cached[3])
        self._tier_chains = tier_cache
        return out

    def _selected_by(self, policies: Sequence[NetworkPolicy],
                     changed: set[str] | None) -> tuple[dict[str, list[Pod]], bool]:
        """Each policy's local pods, recomputed only for policies that changed or whose namespace's
        local pods did (a label change elsewhere in the cluster costs nothing here); and whether
        policies and selections are all the very ones of the last compile."""
        touched = self.m.changed_local_namespaces
        out: dict[str, list[Pod]] = {}
        cache: dict[str, tuple[NetworkPolicy, list[Pod]]] = {}
        same = changed is not None and len(policies) == len(self._selected)
        for policy in policies:
            cached = self._selected.get(policy.key)
            if changed is None or cached is None or cached[0] is not policy or policy.namespace in touched:
                cached = (policy, self.m.selected(policy))
                same = False
            cache[policy.key] = cached
            out[policy.key] = cached[1]
        self._selected = cache
        return out, same

    def _policy_section(self, policies: Sequence[NetworkPolicy], selected_by: dict[str, list[Pod]],
                        families: tuple[Fam, ...]) -> tuple[Isolating, dict[str, Pod], dict[str, Chain],
                                                            dict[str, SetSpec]]:
        """What NetworkPolicy puts in the table: who isolates which local pod, the policy chains, their sets."""
        isolating: Isolating = {}
        local: dict[str, Pod] = {}
        chains = dict(_BASE)
        specs: dict[str, SetSpec] = {}
        chain_cache: dict[tuple[str, Direction], _CachedChain] = {}
        for policy in policies:
            selected = selected_by[policy.key]
            if not selected:
                continue
            for direction in sorted(policy.policy_types):
                cached = self._chains.get((policy.key, direction))
                if cached is None or cached[0] is not policy or cached[1] != families:
                    cached = (policy, families, *render_policy_chain(policy, direction, families))
                chain_cache[(policy.key, direction)] = cached
                chains[cached[2].name] = cached[2]
                specs.update((spec.name, spec) for spec in cached[3])
                for pod in selected:
                    local[pod.key] = pod
                    isolating.setdefault((pod.key, direction), []).append(policy.key)
        self._chains = chain_cache
        return isolating, local, chains, specs

    def _sets_of(self, specs: dict[str, SetSpec], changed: set[str] | None, selected_by: dict[str, list[Pod]],
                 same: bool) -> dict[str, Set]:
        """Every set the specs name, the ones whose inputs did not change taken as they were, unexamined.

        A set's name is a hash of what it stands for, so a name's dependency (``_dependency``) never
        changes: an ipBlock's set never; a peer's when the membership marked the peer dirty; the named
        ports of a NetworkPolicy's selected pods when its selection changed (never while ``same``);
        the rest (all pods, pods in a block) when any pod changed. Anything else goes to ``_set``.
        """
        sets: dict[str, Set] = {}
        dirty = self.m.dirty_peers
        for name in sorted(specs):
            kind, key = self._set_deps.get(name) or self._set_deps.setdefault(name, _dependency(specs[name]))
            cached = self._sets.get(name) if changed is not None else None
            if cached is not None and (kind == "cidr" or (kind == "peer" and key not in dirty)
                                       or (kind == "selected" and same and key in self._selected)
                                       or (kind == "pods" and not changed)):
                sets[name] = cached[1]
            else:
                sets[name] = self._set(specs[name], changed, selected_by)
        for name in [n for n in self._set_deps if n not in specs]:
            del self._set_deps[name]
        return sets

    def _set(self, spec: SetSpec, changed: set[str] | None, selected_by: dict[str, list[Pod]]) -> Set:
        cached = self._sets.get(spec.name)
        if isinstance(spec, CidrSet):
            if cached is None:
                cached = (None, Set(spec.name, ADDR_TYPE[spec.fam], frozenset(subtract(spec.block)), interval=True))
                self._sets[spec.name] = cached
            return cached[1]
        # What the members depend on: a snapshot to compare with the cached one.
        basis: object
        peer = spec if isinstance(spec, PeerSet) else spec.source
        if isinstance(peer, PeerSet | FromPeer):
            key = _peer_key(peer)
            members = self.m.peer_members(key)
            stale = changed is None or cached is None or key in self.m.dirty_peers
            basis = None
        elif isinstance(peer, FromSelected):
            basis = tuple(selected_by.get(peer.policy_key, ()))
            stale = cached is None or cached[0] != basis
        else:
            basis = None
            stale = changed is None or cached is None or bool(changed)
        if not stale and cached is not None:
            return cached[1]
        if isinstance(spec, PeerSet):
            elements = frozenset(ip for key in sorted(members) for ip in self.m.pods[key].ips
                                 if ip_family(ip) == spec.fam)
            result = Set(spec.name, ADDR_TYPE[spec.fam], elements)
        else:
            result = Set(spec.name, f"{ADDR_TYPE[spec.fam]} . inet_proto . inet_service",
                         _named_port_elements(self._named_port_pods(spec, selected_by), spec))
        self._sets[spec.name] = (basis, result)
        return result

    def _named_port_pods(self, spec: NamedPortSet, selected_by: dict[str, list[Pod]]) -> list[Pod]:
        source = spec.source
        if isinstance(source, FromSelected):
            return selected_by.get(source.policy_key, [])
        if isinstance(source, FromPeer):
            return [self.m.pods[k] for k in sorted(self.m.peer_members(_peer_key(source)))]
        pods = list(self.m.pods.values())
        if isinstance(source, FromAll):
            return pods
        assert isinstance(source, FromBlock)
        return [p for p in pods if any(ip_in_block(ip, source.block) for ip in p.ips)]


def _same_objects(old: Sequence[object], new: Sequence[object]) -> bool:
    return len(old) == len(new) and all(a is b for a, b in zip(old, new, strict=True))


def compile_node(view: NodeView) -> Ruleset:
    """The whole table this node should hold for ``view``."""
    return Compiler().compile(view)
