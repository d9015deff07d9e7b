"""The runtime side of CNI: what libcni is for Go runtimes.

- ``CniConfig`` (libcni.py): ADD/CHECK/DEL/GC/STATUS of network lists, VERSION
  probing, cached results and attachments.
- confdir.py: finding network configurations in a directory.
- cache.py: the result/attachment cache in libcni's on-disk layout.
- invoke.py: finding and executing plugin binaries (the ``PluginExec`` seam).

This layer is not on a plugin's start-up path, so everything is imported here.
"""

from pycni.runtime.cache import CacheEntry, CorruptCacheEntry, ResultCache
from pycni.runtime.confdir import (
    NoConfigsFound,
    NotFound,
    SkippedConf,
    conf_files,
    load_all,
    load_file,
    load_network_conf,
)
from pycni.runtime.invoke import ExecFailed, PluginExec, PluginNotFound, PluginTimeout, RawExec, find_in_path
from pycni.runtime.libcni import (
    Attachment,
    CachedAttachment,
    CniConfig,
    GcError,
    MultiError,
    PluginError,
    RuntimeConf,
    ValidationError,
    WrappedError,
)

__all__ = [
    "Attachment",
    "CacheEntry",
    "CachedAttachment",
    "CniConfig",
    "CorruptCacheEntry",
    "ExecFailed",
    "GcError",
    "MultiError",
    "NoConfigsFound",
    "NotFound",
    "PluginError",
    "PluginExec",
    "PluginNotFound",
    "PluginTimeout",
    "RawExec",
    "ResultCache",
    "RuntimeConf",
    "SkippedConf",
    "ValidationError",
    "WrappedError",
    "conf_files",
    "find_in_path",
    "load_all",
    "load_file",
    "load_network_conf",
]
