"""``pycni apply|delete|get|label``: Kubernetes objects in the cluster's etcd, with kubectl's habits.

What each prints is what kubectl prints: ``networkpolicy.networking.k8s.io/deny
created|configured|unchanged``, ``pod "a" deleted``, tables with kubectl's
columns (3 spaces apart), ``-o yaml|json`` the normalised object (a ``List``
for several). Errors are one line on stderr in kubectl's words and exit 1:
``Error from server (NotFound): pods "a" not found``, ``error: ...`` for what
the client refuses, and a validation error exactly as the validator words it.
Unreachable etcd is left to main.py (``pycni: etcd is unreachable ...``).

Every command takes the etcd flags of ``pycni cluster``
(``add_etcd_arguments``). Given neither ``--etcd-endpoints`` nor
``$PYCNI_ETCD_ENDPOINTS``, they use the etcd of the lab that is up
(``$PYCNI_LAB`` chooses among several; ``lab_etcd_of``), entering the lab's
underlay namespace where its etcd listens; with no lab, etcd's default URL.
``cmd_objects`` takes ``kv=`` so tests drive it with ``MemoryKV``. The
store's contract is ``pycni.policy.store``. ``apply --dry-run`` also says
which known pods would gain or lose new connections
(``pycni.policy.snapshot.dry_run_report``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from pycni.cli.cluster import add_etcd_arguments
from pycni.cli.object_tables import dump as _dump
from pycni.cli.object_tables import human_duration
from pycni.cli.object_tables import table as _table

if TYPE_CHECKING:
    from pycni.cluster.kv import KV
    from pycni.cluster.lab_state import LabEtcd
    from pycni.policy.store import Kind, ObjectRef, ObjectStore

__all__ = ["COMMANDS", "add_object_commands", "cmd_objects", "human_duration", "lab_etcd_of"]

COMMANDS = ("apply", "delete", "get", "label")

_ALIASES = {
    "Namespace": ("ns", "namespace", "namespaces"),
    "Pod": ("po", "pod", "pods"),
    "NetworkPolicy": ("netpol", "netpols", "networkpolicy", "networkpolicies", "networkpolicy.networking.k8s.io",
                      "networkpolicies.networking.k8s.io"),
    "AdminNetworkPolicy": ("anp", "adminnetworkpolicy", "adminnetworkpolicies",
                           "adminnetworkpolicies.policy.networking.k8s.io"),
    "BaselineAdminNetworkPolicy": ("banp", "baselineadminnetworkpolicy", "baselineadminnetworkpolicies",
                                   "baselineadminnetworkpolicies.policy.networking.k8s.io"),
}
_MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


class UsageError(Exception):
    """What kubectl refuses before asking the server (printed as ``error: ...``)."""


class _Refused(Exception):
    """A message printed as it is (a validation error placed in its file)."""


def add_object_commands(sub: Any) -> None:
    """Register apply, delete, get and label on main's subparsers."""
    p = sub.add_parser("apply", help="store Kubernetes objects (Namespace, Pod, NetworkPolicy, "
                       "AdminNetworkPolicy, BaselineAdminNetworkPolicy) from manifests",
                       description="Validate every object first, then store them all or none. Re-applying "
                       "an object replaces it, labels included.")
    _filename_argument(p, required=True)
    _namespace_argument(p)
    p.add_argument("--dry-run", nargs="?", const="server", choices=("none", "client", "server"), default="none",
                   help="validate and print what would change; store nothing")
    add_etcd_arguments(p)

    p = sub.add_parser("delete", help="delete objects named in manifests or on the command line",
                       description="Deleting a namespace deletes its pods and policies.")
    p.add_argument("resources", nargs="*", metavar="KIND NAME", help="e.g. 'netpol deny', 'pod/a', 'ns x'")
    _filename_argument(p, required=False)
    _namespace_argument(p)
    p.add_argument("--ignore-not-found", action="store_true", help="an absent object is not an error")
    add_etcd_arguments(p)

    p = sub.add_parser("get", help="list objects as kubectl does (tables, -o yaml|json|wide|name)")
    p.add_argument("kind", metavar="KIND", help="ns|namespace, po|pod, netpol|networkpolicy (plurals too)")
    p.add_argument("names", nargs="*", metavar="NAME")
    _namespace_argument(p)
    p.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")
    p.add_argument("-o", "--output", choices=("yaml", "json", "wide", "name"))
    p.add_argument("--show-labels", action="store_true", help="add a LABELS column")
    add_etcd_arguments(p)

    p = sub.add_parser("label", help="set (k=v) or remove (k-) labels of an object",
                       description="A key that has a value is changed only with --overwrite, as kubectl does.")
    p.add_argument("kind", metavar="KIND")
    p.add_argument("name", metavar="NAME")
    p.add_argument("labels", nargs="+", metavar="KEY=VALUE|KEY-")
    _namespace_argument(p)
    p.add_argument("--overwrite", action="store_true", help="replace a label that has a value")
    add_etcd_arguments(p)


def _filename_argument(p: argparse.ArgumentParser, *, required: bool) -> None:
    p.add_argument("-f", "--filename", action="append", required=required, default=None, metavar="FILE",
                   help="a manifest file, a directory of them (.yaml, .yml, .json), or - for stdin; repeatable")


def _namespace_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("-n", "--namespace", help="the namespace of namespaced objects (default: default)")


@dataclass
class _Io:
    stdin: IO[str]
    out: IO[str]
    err: IO[str]
    now: Callable[[], float]


def cmd_objects(args: argparse.Namespace, environ: Mapping[str, str], *, kv: KV | None = None,
                stdin: IO[str] | None = None, out: IO[str] | None = None, err: IO[str] | None = None,
                now: Callable[[], float] = time.time) -> int:
    """Run one of COMMANDS; kubectl-style errors are printed here, other failures propagate to main."""
    from pycni.policy.manifest import ManifestError
    from pycni.policy.store import ObjectStore, StoreError
    from pycni.policy.validate import ValidationError

    io = _Io(stdin or sys.stdin, out or sys.stdout, err or sys.stderr, now)
    if kv is None and not args.etcd_endpoints and not environ.get("PYCNI_ETCD_ENDPOINTS"):
        lab = lab_etcd_of(environ)  # no etcd named: a lab's, if one is up (its etcd is reachable in its underlay)
        if lab is not None:
            from pycni.net.netns import run_in_netns

            args.etcd_endpoints = lab.endpoint
            return run_in_netns(lab.netns, cmd_objects, args, environ, stdin=stdin, out=out, err=err, now=now)
    opened: KV | None = None
    if kv is None:
        from pycni.cli.cluster import connect

        kv = opened = connect(args, environ)
    handler = {"apply": _apply, "delete": _delete, "get": _get, "label": _label}[args.command]
    try:
        return handler(args, ObjectStore(kv, args.etcd_prefix, clock=now), io)
    except (ValidationError, _Refused) as exc:
        print(str(exc), file=io.err)
    except StoreError as exc:
        print(_server_error(exc), file=io.err)
    except (UsageError, ManifestError) as exc:
        print(f"error: {exc}", file=io.err)
    finally:
        if opened is not None:
            opened.close()
    return 1


def lab_etcd_of(environ: Mapping[str, str]) -> LabEtcd | None:
    """The etcd of the lab ``$PYCNI_LAB`` names, or of the only lab up (pycni.cluster.lab_state.lab_etcd)."""
    from pycni.cluster.lab_state import DEFAULT_ROOT, lab_etcd

    try:
        return lab_etcd(environ.get("PYCNI_LAB_ROOT") or DEFAULT_ROOT, environ.get("PYCNI_LAB") or None)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _server_error(exc: Exception) -> str:
    reason = getattr(exc, "reason", "")
    if reason in ("NotFound", "Forbidden"):
        return f"Error from server ({reason}): {exc}"
    return f"error: {exc}"


# -- apply ------------------------------------------------------------------------------------


def _apply(args: argparse.Namespace, store: ObjectStore, io: _Io) -> int:
    from pycni.policy.validate import ValidationError, validate_all

    sources = _read_sources(args.filename, io)
    models = []
    for source, documents in sources:
        for document in documents:
            _set_namespace(document, args.namespace)
        try:
            models += validate_all(documents)
        except ValidationError as exc:
            if len(sources) == 1:
                raise
            raise _Refused(f"{source}: {exc}") from None  # which file "document 2" is in
    if not models:
        raise UsageError("no objects passed to apply")
    dry_run = args.dry_run != "none"
    for applied in store.apply(models, dry_run=dry_run):
        print(f"{applied.ref} {applied.outcome}{' (dry run)' if dry_run else ''}", file=io.out)
    if dry_run:  # which known pods would gain or lose new connections (pycni.policy.snapshot)
        from pycni.policy.snapshot import dry_run_report, read

        for line in dry_run_report(read(store.kv, store.prefix), models):
            print(line, file=io.out)
    return 0


def _read_sources(filenames: Sequence[str], io: _Io) -> list[tuple[str, list[dict[str, Any]]]]:
    """Each file's objects (a directory's files in name order; ``-`` is stdin)."""
    from pycni.policy.manifest import load_manifests

    sources: list[tuple[str, list[dict[str, Any]]]] = []
    for name in filenames:
        if name == "-":
            sources.append(("-", load_manifests(io.stdin.read(), "-")))
            continue
        for path in _manifest_paths(name):
            try:
                with open(path, encoding="utf-8") as f:
                    text = f.read()
            except OSError as exc:
                raise UsageError(f"{path}: {exc.strerror}") from None
            sources.append((path, load_manifests(text, path)))
    return sources


def _manifest_paths(name: str) -> list[str]:
    if os.path.isdir(name):
        return [os.path.join(name, entry) for entry in sorted(os.listdir(name))
                if entry.endswith(_MANIFEST_SUFFIXES) and os.path.isfile(os.path.join(name, entry))]
    if not os.path.exists(name):
        raise UsageError(f'the path "{name}" does not exist')
    return [name]


def _set_namespace(document: dict[str, Any], namespace: str | None) -> None:
    """``-n`` fills in the namespace of namespaced objects that have none and must agree with the rest."""
    from pycni.policy.store import KINDS

    kind = KINDS.get(str(document.get("kind")))
    metadata = document.get("metadata")
    if namespace is None or kind is None or not kind.namespaced or not isinstance(metadata, dict):
        return
    own = metadata.get("namespace")
    if own in (None, ""):
        metadata["namespace"] = namespace
    elif own != namespace:
        raise UsageError(f'the namespace from the provided object "{own}" does not match the namespace '
                         f'"{namespace}". You must pass \'--namespace={own}\' to perform this operation.')


# -- delete -----------------------------------------------------------------------------------


def _delete(args: argparse.Namespace, store: ObjectStore, io: _Io) -> int:
    from pycni.policy.store import NAMESPACE, NotFound

    if args.filename and args.resources:
        raise UsageError("use either -f FILE or KIND NAME, not both")
    if args.filename:
        refs = [_ref_of_document(d, args.namespace) for _, docs in _read_sources(args.filename, io) for d in docs]
    else:
        refs = _refs_from_args(args.resources, args.namespace)
    # Contents before their namespace: deleting a namespace takes them along, and they would then be "not found".
    refs = [r for r in refs if r.kind is not NAMESPACE] + [r for r in refs if r.kind is NAMESPACE]
    failed = False
    for ref in dict.fromkeys(refs):
        try:
            store.delete(ref.kind, ref.namespace, ref.name)
        except NotFound as exc:
            if not args.ignore_not_found:
                print(_server_error(exc), file=io.err)
                failed = True
            continue
        print(f'{ref.kind.qualified_kind} "{ref.name}" deleted', file=io.out)
    return 1 if failed else 0


def _ref_of_document(document: dict[str, Any], namespace: str | None) -> ObjectRef:
    from pycni.policy.store import KINDS, ObjectRef

    kind = KINDS.get(str(document.get("kind")))
    if kind is None:
        raise UsageError(f"kind {document.get('kind')!r}: pycni stores only {', '.join(KINDS)}")
    metadata = document.get("metadata") if isinstance(document.get("metadata"), dict) else {}
    assert isinstance(metadata, dict)
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        raise UsageError(f"a {kind.name} without metadata.name")
    if not kind.namespaced:
        return ObjectRef(kind, "", name)
    return ObjectRef(kind, str(metadata.get("namespace") or namespace or "default"), name)


def _refs_from_args(tokens: Sequence[str], namespace: str | None) -> list[ObjectRef]:
    """``KIND NAME...`` or ``KIND/NAME...`` (kubectl's two spellings)."""
    from pycni.policy.store import ObjectRef

    if not tokens:
        raise UsageError("you must provide one or more resources by argument or filename")
    pairs: list[tuple[Kind, str]] = []
    if "/" in tokens[0]:
        for token in tokens:
            kind_name, _, name = token.partition("/")
            if not name:
                raise UsageError(f"there is no need to specify a resource type as a separate argument when "
                                 f"passing arguments in resource/name form (e.g. 'pycni get {kind_name}/NAME')")
            pairs.append((resolve_kind(kind_name), name))
    else:
        kind = resolve_kind(tokens[0])
        if len(tokens) == 1:
            raise UsageError(f"resource(s) were provided, but no name was specified ({tokens[0]} NAME)")
        pairs = [(kind, name) for name in tokens[1:]]
    return [ObjectRef(kind, "" if not kind.namespaced else namespace or "default", name) for kind, name in pairs]


def resolve_kind(word: str) -> Kind:
    """kubectl's names for a kind: ``netpol``, ``networkpolicies``, ``po``, ``ns``, ... (any case)."""
    from pycni.policy.store import KINDS

    lowered = word.lower()
    for kind_name, aliases in _ALIASES.items():
        if lowered in aliases:
            return KINDS[kind_name]
    raise UsageError(f'the server doesn\'t have a resource type "{word}"')


# -- get --------------------------------------------------------------------------------------


def _get(args: argparse.Namespace, store: ObjectStore, io: _Io) -> int:
    from pycni.policy.store import NotFound

    if "/" in args.kind:  # kubectl's other spelling: get netpol/deny [netpol/allow]
        refs = _refs_from_args([args.kind, *args.names], args.namespace)
        if len({r.kind for r in refs}) > 1:
            raise UsageError("pycni get takes one kind at a time")
        args.kind, args.names = args.kind.partition("/")[0], [r.name for r in refs]
    kind = resolve_kind(args.kind)
    if args.names and args.all_namespaces:
        raise UsageError("a resource cannot be retrieved by name across all namespaces")
    namespace = args.namespace or "default"
    failed = False
    if args.names:
        found = []
        for name in dict.fromkeys(args.names):
            try:
                found.append(store.get(kind, namespace, name))
            except NotFound as exc:
                print(_server_error(exc), file=io.err)
                failed = True
    else:
        found = store.list(kind, None if args.all_namespaces else namespace)
    single = len(args.names) == 1 and len(found) == 1
    if args.output in ("yaml", "json"):
        if found or not args.names:
            doc = found[0].manifest if single else {
                "apiVersion": "v1", "items": [o.manifest for o in found], "kind": "List",
                "metadata": {"resourceVersion": ""}}
            print(_dump(doc, args.output), file=io.out, end="")
    elif args.output == "name":
        for obj in found:
            print(str(obj.ref), file=io.out)
    elif found:
        print(_table(kind, found, all_namespaces=args.all_namespaces and kind.namespaced, wide=args.output == "wide",
                     show_labels=args.show_labels, now=io.now()), file=io.out)
    elif not args.names:
        where = "" if args.all_namespaces or not kind.namespaced else f" in {namespace} namespace"
        print(f"No resources found{where}.", file=io.err)
    return 1 if failed else 0


def _label(args: argparse.Namespace, store: ObjectStore, io: _Io) -> int:
    from pycni.policy.store import ObjectRef

    kind = resolve_kind(args.kind)
    to_set, to_remove = parse_label_args(args.labels)
    ref = ObjectRef(kind, (args.namespace or "default") if kind.namespaced else "", args.name)
    result = store.label(kind, ref.namespace, ref.name, to_set, to_remove, overwrite=args.overwrite)
    for key in result.absent:
        print(f'label "{key}" not found.', file=io.out)
    print(f"{ref} {'labeled' if result.changed else 'not labeled'}", file=io.out)
    return 0


def parse_label_args(specs: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """``k=v`` to set and ``k-`` to remove, refused as kubectl refuses them."""
    to_set: dict[str, str] = {}
    to_remove: list[str] = []
    for spec in specs:
        if "=" in spec:
            parts = spec.split("=")
            if len(parts) != 2 or not parts[0]:
                raise UsageError(f"invalid label spec: {spec}")
            to_set[parts[0]] = parts[1]
        elif spec.endswith("-") and len(spec) > 1:
            to_remove.append(spec[:-1])
        else:
            raise UsageError(f"unknown label spec: {spec}")
    if any(key in to_set for key in to_remove):
        raise UsageError("can not both modify and remove a label in the same command")
    return to_set, to_remove
