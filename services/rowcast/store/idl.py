"""HBase's two Thrift interfaces as Python modules.

`Hbase_thrift` is Thrift1, the data gateway happybase speaks (happybase loads it when it is
imported). `hbase2` is Thrift2, used only for table administration (store/admin.py): HBase's own
`thrift2/hbase.thrift` from the hbase-thrift 2.6.1 jar (vendored, unchanged, in
store/vendor/), loaded with thriftpy2. Both are here so
that the one map of lower-level errors (store/client.py) can name the exceptions of each.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import happybase  # noqa: F401  (importing happybase loads `Hbase_thrift`)
import Hbase_thrift
import thriftpy2

with resources.as_file(resources.files("rowcast.store") / "vendor" / "hbase2.thrift") as _idl:
    hbase2: Any = thriftpy2.load(str(_idl), module_name="hbase2_thrift")

__all__ = ["Hbase_thrift", "hbase2"]
