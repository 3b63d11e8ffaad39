"""What a benchmark run needs to call its servers with TLS and a token: the home's CA, server
certificate and signing key (made when missing, as `rowcast suite up` makes them) and a
short-lived predictor token of the run's own, given to ghz as a metadata file."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from rowcast.config import SecuritySettings
from rowcast.security.certs import write_private
from rowcast.security.identity import Role
from rowcast_cli.security_cmd import init_security, write_token

#: The run's token outlives any run (a full one takes well under an hour).
TOKEN_TTL_S: Final = 12 * 3600
TOKEN_NAME: Final = "rowcast-bench"


@dataclass(frozen=True)
class BenchCredentials:
    """The CA the run's TLS servers are checked against, and the ghz metadata file that
    carries `authorization: Bearer <token>` (role predictor)."""

    ca_file: Path
    metadata_file: Path


def prepare(sec: SecuritySettings, scratch: Path) -> BenchCredentials:
    """Make the home's security files if missing, and the run's token in `scratch`."""
    init_security(sec)
    token_file = scratch / "bench.token"
    write_token(sec, TOKEN_NAME, frozenset({Role.PREDICTOR}), TOKEN_TTL_S, token_file)
    token = token_file.read_text().strip()
    metadata = scratch / "ghz-metadata.json"
    write_private(metadata, json.dumps({"authorization": f"Bearer {token}"}).encode())
    return BenchCredentials(sec.ca_file, metadata)
