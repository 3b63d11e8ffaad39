"""A server's security at run time, from its settings: the TLS credentials it serves with, the
auth interceptor with its token verifier, the revocation list kept fresh from HBase, and the
credentials a prediction server uses to reach the AuditService."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from rowcast.config import SecuritySettings
from rowcast.errors import FailedPrecondition, RowcastError
from rowcast.security.interceptor import Authenticator, AuthInterceptor, CertificateIdentities
from rowcast.security.tokens import Revoked, TokenVerifier
from rowcast.store.client import HBaseClient
from rowcast.store.revocations import RevocationStore

log = logging.getLogger(__name__)

RECORDER_CERT = "recorder.pem"
RECORDER_KEY = "recorder-key.pem"


def _read(path: Path, what: str, fix: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise FailedPrecondition(
            f"{what} {path} is missing: {fix}, or start with --insecure (local experiments "
            "only: no TLS, no authentication)"
        ) from None


class ReloadableTls:
    """The server's TLS credentials, re-read from their files when asked (SIGHUP on `rowcast
    serve`): gRPC asks for the certificate configuration at each new connection, and gets the
    new one once after a reload; connections already open keep theirs."""

    def __init__(self, sec: SecuritySettings) -> None:
        self._sec = sec
        self._pending = False
        self.reloads = 0
        initial = self._configuration()
        self.credentials = grpc.dynamic_ssl_server_credentials(
            initial,
            self._fetch,  # type: ignore[arg-type]  # grpc's stub omits "None: unchanged"
            require_client_authentication=sec.client_certs == "require",
        )

    def _configuration(self) -> grpc.ServerCertificateConfiguration:
        fix = "run `rowcast certs init`"
        key = _read(self._sec.key_file, "the TLS key", fix)
        cert = _read(self._sec.cert_file, "the TLS certificate", fix)
        ca = (
            None
            if self._sec.client_certs == "none"
            else _read(self._sec.ca_file, "the CA certificate", fix)
        )
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)

    def request_reload(self) -> None:
        """Serve the files' current contents to the next connections."""
        self._pending = True

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        if not self._pending:
            return None  # unchanged
        self._pending = False
        try:
            configuration = self._configuration()
        except RowcastError as exc:
            log.error("TLS reload failed, keeping the certificate in use: %s", exc.message)
            return None
        self.reloads += 1
        log.info("TLS certificate and key reloaded from %s", self._sec.tls_dir)
        return configuration


def audit_channel_credentials(sec: SecuritySettings) -> grpc.ChannelCredentials | None:
    """How a prediction server reaches the AuditService: TLS checked against the CA, its
    recorder token as call credentials (and its recorder certificate, when mTLS is on)."""
    if not sec.tls:
        if sec.auth:
            raise FailedPrecondition(
                "authentication needs TLS (tokens must not travel in plain text): turn TLS on"
            )
        return None
    ca = _read(sec.ca_file, "the CA certificate", "run `rowcast certs init`")
    cert_path, key_path = sec.tls_dir / RECORDER_CERT, sec.tls_dir / RECORDER_KEY
    pair = (
        (key_path.read_bytes(), cert_path.read_bytes())
        if sec.client_certs != "none" and cert_path.exists() and key_path.exists()
        else (None, None)
    )
    channel = grpc.ssl_channel_credentials(ca, private_key=pair[0], certificate_chain=pair[1])
    if not sec.auth:
        return channel
    token = (
        _read(sec.recorder_token_file, "the recorder token", "run `rowcast auth init`")
        .decode()
        .strip()
    )
    return grpc.composite_channel_credentials(channel, grpc.access_token_call_credentials(token))


@dataclass
class ServerSecurity:
    """What start_server needs (credentials, interceptor) and the revocation refresher."""

    settings: SecuritySettings
    tls: ReloadableTls | None = None
    interceptor: AuthInterceptor | None = None
    revoked: Revoked = field(default_factory=Revoked)
    _task: asyncio.Task[None] | None = None

    @classmethod
    async def start(
        cls, sec: SecuritySettings, client: HBaseClient, store_timeout_s: float
    ) -> ServerSecurity:
        """Load the files (FailedPrecondition naming the missing one) and, with auth on, read
        the revocation list once and keep re-reading it in the background."""
        if sec.auth and not sec.tls:
            raise FailedPrecondition(
                "authentication needs TLS (tokens must not travel in plain text): turn TLS on"
            )
        security = cls(sec)
        if sec.tls:
            security.tls = ReloadableTls(sec)
        if sec.auth:
            public = _read(sec.token_public_key_file, "the token key", "run `rowcast auth init`")
            verifier = TokenVerifier(public, lambda: security.revoked)
            certificates = CertificateIdentities() if sec.client_certs != "none" else None
            security.interceptor = AuthInterceptor(Authenticator(verifier, certificates))
            store = RevocationStore(client)
            await security._refresh(store, store_timeout_s)
            security._task = asyncio.create_task(security._keep_fresh(store, store_timeout_s))
        return security

    @property
    def credentials(self) -> grpc.ServerCredentials | None:
        return None if self.tls is None else self.tls.credentials

    def reload_tls(self) -> None:
        """Re-read the certificate and key for new connections (a no-op without TLS)."""
        if self.tls is not None:
            self.tls.request_reload()

    async def _refresh(self, store: RevocationStore, timeout_s: float) -> None:
        try:
            self.revoked = await store.load(timeout_s=timeout_s)
        except RowcastError as exc:
            log.warning("could not read the revoked tokens (keeping the last list): %s", exc)

    async def _keep_fresh(self, store: RevocationStore, timeout_s: float) -> None:
        while True:
            await asyncio.sleep(self.settings.revocation_refresh_s)
            await self._refresh(store, timeout_s)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
