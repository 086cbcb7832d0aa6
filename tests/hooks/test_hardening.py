"""Hardening of both hooks, over real HTTP: time arguments, TLS and proxy failures, plain http,
redirects and PostHog's ingestion hosts.

The TLS tests put a TLS endpoint with a self-signed certificate made at test time in front of an
emulator; the proxy tests point the standard proxy variables at a port nobody listens on.
"""

from __future__ import annotations

import ipaddress
import logging
import selectors
import socket
import ssl
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from airflow_provider_posthog_bx import api
from airflow_provider_posthog_bx.exceptions import (
    PostHogAmbiguousRequestError,
    PostHogAPIError,
    PostHogConfigError,
    PostHogInputError,
    PostHogTransportError,
)
from airflow_provider_posthog_bx.hooks.posthog import PostHogHook
from airflow_provider_posthog_bx.hooks.posthog_async import AsyncPostHogHook

from .conftest import FAST_RETRY, SECRET_KEY, arun, closed_port, hours_ago

HOOK_LOGGER = "airflow_provider_posthog_bx.hooks.posthog"
ASYNC_LOGGER = "airflow_provider_posthog_bx.hooks.posthog_async"
THREE_TRIES = api.RetryPolicy(max_attempts=3, backoff_base=0.01, backoff_max=0.05)
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


def backfills_path(export_id: str) -> str:
    return f"/api/projects/1/batch_exports/{export_id}/backfills/"


# ---------------------------------------------------------------------------------------------
# 1. Time arguments: aware datetimes, dates and ISO strings; naive values refused


def test_create_backfill_takes_aware_datetimes(emu, hook, export):
    start, end = hours_ago(emu, 3), hours_ago(emu, 1)
    local = timezone(timedelta(hours=2))
    backfill_id = hook.create_backfill(export["id"], start.astimezone(local), end)
    get, post = emu.requests
    assert (get.method, get.path) == ("GET", f"/api/projects/1/batch_exports/{export['id']}/")
    assert (post.method, post.path, post.status) == ("POST", backfills_path(export["id"]), 201)
    zulu = "%Y-%m-%dT%H:%M:%SZ"
    assert post.body == {"start_at": start.strftime(zulu), "end_at": end.strftime(zulu)}
    assert emu.backfills(export["id"])[0]["id"] == backfill_id


def test_create_backfill_sends_dates_for_a_daily_export(emu, hook):
    daily = emu.create_batch_export(name="daily", interval="day")
    today = emu.now().date()
    start, end = today - timedelta(days=3), today - timedelta(days=1)
    # A date and a datetime at the start of a day: both become the export's dates.
    end_dt = datetime.combine(end, datetime.min.time(), tzinfo=timezone.utc)
    backfill_id = hook.create_backfill(daily["id"], start, end_dt)
    assert emu.requests[-1].body == {"start_at": start.isoformat(), "end_at": end.isoformat()}
    assert emu.get_backfill(backfill_id)["batch_export"] == daily["id"]


def test_create_backfill_checks_a_weekly_export_offset_day(emu, hook):
    weekly = emu.create_batch_export(name="weekly", interval="week", offset_day=1)  # Monday
    day = emu.now().date() - timedelta(days=21)
    monday = day - timedelta(days=day.weekday())
    with pytest.raises(PostHogInputError) as info:
        hook.create_backfill(weekly["id"], monday + timedelta(days=1), monday + timedelta(days=8))
    assert info.value.param == "start_at"
    assert "runs weekly on Monday" in str(info.value)
    assert [r.method for r in emu.requests] == ["GET"]  # the export, never a POST

    hook.create_backfill(weekly["id"], monday, monday + timedelta(days=7))
    end = (monday + timedelta(days=7)).isoformat()
    assert emu.requests[-1].body == {"start_at": monday.isoformat(), "end_at": end}


@pytest.mark.parametrize("which", ["start_at", "end_at"])
def test_create_backfill_refuses_a_naive_datetime_before_any_request(emu, hook, export, which):
    aware = {"start_at": hours_ago(emu, 3), "end_at": hours_ago(emu, 1)}
    naive = {**aware, which: aware[which].replace(tzinfo=None)}
    with pytest.raises(PostHogInputError) as info:
        hook.create_backfill(export["id"], naive["start_at"], naive["end_at"])
    assert info.value.param == which
    assert str(info.value).startswith(f"{which} must be timezone-aware (got '")
    assert emu.requests == []


def test_create_backfill_still_sends_strings_as_given(emu, hook, export):
    start, end = "2026-01-01T00:00:00+00:00", "2026-01-01T02:00:00Z"
    hook.create_backfill(export["id"], start, end)
    (post,) = emu.requests  # no GET of the export
    assert post.body == {"start_at": start, "end_at": end}


def test_run_filters_take_datetimes_dates_iso_and_relative_strings(emu, hook, export):
    old_end = hours_ago(emu, 10 * 24)
    old = emu.add_run(export["id"], old_end - timedelta(hours=1), old_end, created_at=old_end)
    since = old_end - timedelta(days=1)
    for after, sent in [
        (since, since.strftime("%Y-%m-%dT%H:%M:%SZ")),
        (since.date(), f"{since.date().isoformat()}T00:00:00Z"),
        (since.isoformat(), since.isoformat()),
        ("-30d", "-30d"),
    ]:
        assert [r["id"] for r in hook.list_runs(export["id"], after=after)] == [old["id"]]
        assert emu.requests[-1].query == {"after": [sent]}
        assert hook.get_run(export["id"], old["id"], after=after)["id"] == old["id"]
        assert emu.requests[-1].query == {"after": [sent]}


@pytest.mark.parametrize("name", ["after", "before", "start", "end"])
def test_run_filters_refuse_naive_values_before_any_request(emu, hook, ahook, export, name):
    for naive in (datetime(2026, 1, 1), "2026-01-01T00:00:00"):
        with pytest.raises(PostHogInputError) as info:
            hook.list_runs(export["id"], **{name: naive})
        assert info.value.param == name and "must be timezone-aware" in str(info.value)
        with pytest.raises(PostHogInputError, match=f"^{name} must be timezone-aware"):
            arun(ahook.list_runs(export["id"], **{name: naive}))
    with pytest.raises(PostHogInputError, match=r"^after must be timezone-aware"):
        hook.get_run(
            export["id"], "0190b4f8-0000-0000-0000-000000000000", after=datetime(2026, 1, 1)
        )
    assert emu.requests == []


def test_log_bounds_take_datetimes_and_dates_and_refuse_naive_ones(emu, hook, ahook, export):
    base = hours_ago(emu, 30)
    emu.add_log(export["id"], "in the window", timestamp=base + timedelta(minutes=1))
    window = {"after": base, "before": (base + timedelta(days=2)).date()}
    sent = {
        "limit": ["50"],
        "after": [base.strftime("%Y-%m-%dT%H:%M:%SZ")],
        "before": [f"{(base + timedelta(days=2)).date().isoformat()}T00:00:00Z"],
    }
    assert [e["message"] for e in hook.get_logs(export["id"], **window)] == ["in the window"]
    assert emu.requests[-1].query == sent
    assert [e["message"] for e in arun(ahook.get_logs(export["id"], **window))] == ["in the window"]
    assert emu.requests[-1].query == sent
    emu.clear_requests()
    for name in ("after", "before"):
        with pytest.raises(PostHogInputError, match=f"^{name} must be timezone-aware"):
            hook.get_logs(export["id"], **{name: base.replace(tzinfo=None)})
        with pytest.raises(PostHogInputError, match=f"^{name} must be timezone-aware"):
            arun(ahook.get_logs(export["id"], **{name: base.replace(tzinfo=None)}))
    assert emu.requests == []


@pytest.fixture
def ahook(conn_id) -> AsyncPostHogHook:
    return AsyncPostHogHook(conn_id, retry_policy=FAST_RETRY)


# ---------------------------------------------------------------------------------------------
# 2. TLS and proxy failures: not sent, the reason kept; an untrusted certificate not retried


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1/localhost signed by its own key (cert, key PEM files)."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(timezone.utc)
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


class TLSFront:
    """A TLS endpoint on loopback that relays the decrypted bytes to an emulator.

    ``handshakes`` counts connections that reached the TLS handshake (each try of a client).
    """

    def __init__(self, target: tuple[str, int], cert_file: Path, key_file: Path) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert_file, key_file)
        self.target = target
        self.handshakes = 0
        self._closed = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"https://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            self.handshakes += 1
            threading.Thread(target=self._relay, args=(raw,), daemon=True).start()

    def _relay(self, raw: socket.socket) -> None:
        raw.settimeout(5)
        try:
            tls = self.context.wrap_socket(raw, server_side=True)
        except OSError:  # the client refused the certificate
            raw.close()
            return
        upstream = socket.create_connection(self.target)
        with tls, upstream, selectors.DefaultSelector() as selector:
            tls.setblocking(False)
            upstream.setblocking(False)
            selector.register(tls, selectors.EVENT_READ)
            selector.register(upstream, selectors.EVENT_READ)
            while not self._closed.is_set():
                ready = {key.fileobj for key, _ in selector.select(0.05)}
                if tls.pending():
                    ready.add(tls)
                for source in ready:
                    sink = upstream if source is tls else tls
                    try:
                        data = source.recv(65536)  # type: ignore[union-attr]
                    except (ssl.SSLWantReadError, BlockingIOError):
                        continue
                    except OSError:
                        return
                    if not data:
                        return
                    sink.setblocking(True)
                    sink.sendall(data)
                    sink.setblocking(False)

    def close(self) -> None:
        self._closed.set()
        self.listener.close()


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    return _self_signed(tmp_path)


@pytest.fixture
def tls_front(emu, certificate) -> Iterator[TLSFront]:
    host, port = emu.url.removeprefix("http://").split(":")
    front = TLSFront((host, int(port)), *certificate)
    yield front
    front.close()


@pytest.fixture
def no_env_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def test_trusted_self_signed_certificate_works(
    emu, set_conn, export, tls_front, certificate, monkeypatch, no_env_proxies
):
    # The front is a working PostHog over TLS once its certificate is trusted.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate[0]))
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    conn = set_conn(host=tls_front.url, password=SECRET_KEY, extra={"project_id": 1})
    assert (
        PostHogHook(conn, retry_policy=FAST_RETRY).get_batch_export(export["id"])["id"]
        == (export["id"])
    )
    ahook = AsyncPostHogHook(conn, retry_policy=FAST_RETRY)
    assert arun(ahook.list_runs(export["id"])) == []
    assert [r.status for r in emu.requests] == [200, 200]


def test_untrusted_certificate_is_not_sent_and_not_retried(
    emu, set_conn, export, tls_front, caplog, monkeypatch, no_env_proxies
):
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    conn = set_conn(host=tls_front.url, password=SECRET_KEY, extra={"project_id": 1})
    hook = PostHogHook(conn, retry_policy=THREE_TRIES)
    caplog.set_level(logging.WARNING)
    end = hours_ago(emu, 1).isoformat()
    with pytest.raises(PostHogTransportError) as info:
        hook.create_backfill(export["id"], hours_ago(emu, 3).isoformat(), end)
    error = info.value
    assert type(error) is PostHogTransportError  # not "ambiguous": nothing reached PostHog
    assert error.sent is False
    assert "certificate verify failed: self-signed certificate" in error.reason
    assert "127.0.0.1" in error.reason and "closed before PostHog answered" not in error.reason
    assert "after" not in error.reason  # one try: a retry cannot fix a certificate
    assert tls_front.handshakes == 1
    assert emu.requests == [] and emu.backfills(export["id"]) == []
    assert not [r for r in caplog.records if "retrying" in r.getMessage()]


def test_untrusted_certificate_async(
    emu, set_conn, export, tls_front, caplog, monkeypatch, no_env_proxies
):
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    conn = set_conn(host=tls_front.url, password=SECRET_KEY, extra={"project_id": 1})
    caplog.set_level(logging.WARNING)
    with pytest.raises(PostHogTransportError) as info:
        arun(AsyncPostHogHook(conn, retry_policy=THREE_TRIES).list_runs(export["id"]))
    assert type(info.value) is PostHogTransportError and info.value.sent is False
    assert "certificate verify failed: self-signed certificate" in info.value.reason
    assert tls_front.handshakes == 1
    assert emu.requests == []
    assert not [r for r in caplog.records if "retrying" in r.getMessage()]


def test_tls_to_a_plain_http_port_is_not_sent(emu, set_conn, export, no_env_proxies):
    # https:// to the emulator's plain port: the handshake fails, nothing is sent.
    conn = set_conn(
        host=emu.url.replace("http://", "https://"), password=SECRET_KEY, extra={"project_id": 1}
    )
    with pytest.raises(PostHogTransportError) as info:
        PostHogHook(conn, retry_policy=FAST_RETRY).create_backfill(
            export["id"], hours_ago(emu, 3).isoformat(), hours_ago(emu, 1).isoformat()
        )
    assert type(info.value) is PostHogTransportError and info.value.sent is False
    assert "TLS connection to 127.0.0.1 could not be set up" in info.value.reason
    assert emu.backfills(export["id"]) == []


@pytest.fixture
def refusing_proxy(monkeypatch: pytest.MonkeyPatch, no_env_proxies) -> str:
    """Every proxy variable set to a loopback port nobody listens on (with credentials)."""
    proxy = f"http://proxyuser:pr0xy-s3cret@127.0.0.1:{closed_port()}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(name, proxy)
        monkeypatch.setenv(name.lower(), proxy)
    return proxy


def test_refusing_proxy_is_not_sent_and_retried(emu, hook, export, refusing_proxy, caplog):
    hook.retry_policy = THREE_TRIES
    caplog.set_level(logging.WARNING, logger=HOOK_LOGGER)
    with pytest.raises(PostHogTransportError) as info:
        hook.create_backfill(
            export["id"], hours_ago(emu, 3).isoformat(), hours_ago(emu, 1).isoformat()
        )
    error = info.value
    assert type(error) is PostHogTransportError and error.sent is False
    port = refusing_proxy.rsplit(":", 1)[1]
    assert error.reason == (
        f"could not reach {emu.url} through the proxy http://127.0.0.1:{port} refused the "
        "connection (after 3 tries)"
    )
    assert "pr0xy-s3cret" not in str(error)
    retries = [r.getMessage() for r in caplog.records if r.name == HOOK_LOGGER]
    assert len(retries) == 2 and all("refused the connection" in m for m in retries)
    assert emu.requests == []


def test_refusing_proxy_async(emu, conn_id, export, refusing_proxy):
    with pytest.raises(PostHogTransportError) as info:
        arun(AsyncPostHogHook(conn_id, retry_policy=FAST_RETRY).list_runs(export["id"]))
    assert type(info.value) is PostHogTransportError and info.value.sent is False
    assert "through the proxy http://127.0.0.1:" in info.value.reason
    assert "refused the connection" in info.value.reason
    assert "pr0xy-s3cret" not in str(info.value)
    assert emu.requests == []


# ---------------------------------------------------------------------------------------------
# 3. Plain http only to loopback (unless allowed); redirects are not followed


def _outbound_address() -> str:
    """This machine's address on its default route (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("203.0.113.1", 9))  # TEST-NET-3: only picks a route
        except OSError:
            pytest.skip("no network interface besides loopback")
        address = str(probe.getsockname()[0])
    if ipaddress.ip_address(address).is_loopback or address == "0.0.0.0":
        pytest.skip("no network interface besides loopback")
    return address


@pytest.fixture
def lan_emu(make_emulator):
    """An emulator listening on a non-loopback address of this machine."""
    return make_emulator(host=_outbound_address())


def test_plain_http_to_another_host_is_refused_before_any_request(
    lan_emu, set_conn, no_env_proxies
):
    export = lan_emu.create_batch_export()
    conn = set_conn(host=lan_emu.url, password=SECRET_KEY, extra={"project_id": 1})
    with pytest.raises(PostHogConfigError) as info:
        PostHogHook(conn, retry_policy=FAST_RETRY).get_batch_export(export["id"])
    message = str(info.value)
    assert f"PostHog connection host {lan_emu.url!r} uses plain http" in message
    assert "clear text" in message and '"allow_insecure_http": true' in message
    with pytest.raises(PostHogConfigError, match="uses plain http"):
        arun(AsyncPostHogHook(conn, retry_policy=FAST_RETRY).list_runs(export["id"]))
    assert lan_emu.requests == []


@pytest.mark.parametrize("flag", [True, "true", " True "])
def test_plain_http_to_another_host_when_allowed(lan_emu, set_conn, no_env_proxies, flag):
    export = lan_emu.create_batch_export()
    extra = {"project_id": 1, "allow_insecure_http": flag}
    conn = set_conn(host=lan_emu.url, password=SECRET_KEY, extra=extra)
    assert (
        PostHogHook(conn, retry_policy=FAST_RETRY).get_batch_export(export["id"])["id"]
        == (export["id"])
    )
    assert arun(AsyncPostHogHook(conn, retry_policy=FAST_RETRY).list_runs(export["id"])) == []
    assert [r.status for r in lan_emu.requests] == [200, 200]


def test_allow_insecure_http_must_be_a_boolean(set_conn):
    extra = {"project_id": 1, "allow_insecure_http": "yes please"}
    conn = set_conn(host="http://posthog.internal:8000", password=SECRET_KEY, extra=extra)
    with pytest.raises(PostHogConfigError, match="allow_insecure_http must be true or false"):
        PostHogHook(conn).settings  # noqa: B018


@pytest.mark.parametrize(
    "fields",
    [
        {"host": "http://localhost:{port}"},
        {"host": "http://127.0.0.1:{port}"},
        {"host": "localhost", "port": "{port}", "schema": "http"},
    ],
)
def test_plain_http_to_loopback_stays_allowed(emu, set_conn, export, fields, no_env_proxies):
    port = emu.url.rsplit(":", 1)[1]
    filled = {name: value.format(port=port) for name, value in fields.items()}
    conn = set_conn(password=SECRET_KEY, extra={"project_id": 1}, **filled)
    hook = PostHogHook(conn, retry_policy=FAST_RETRY)
    assert hook.get_batch_export(export["id"])["id"] == export["id"]


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("http://127.0.0.2:8000", True),
        ("http://[::1]:8000", True),
        ("http://[::ffff:127.0.0.1]:8000", True),
        ("http://LOCALHOST", True),
        ("http://10.0.0.5:8000", False),
        ("http://posthog.internal", False),
        ("http://localhost.example.com", False),
        ("https://posthog.internal", True),
    ],
)
def test_which_plain_http_hosts_are_loopback(host, allowed):
    if allowed:
        assert api.base_url_from(host) == host.rstrip("/")
    else:
        with pytest.raises(PostHogConfigError, match="uses plain http"):
            api.base_url_from(host)
        assert api.base_url_from(host, allow_insecure_http=True) == host


class Redirector:
    """A loopback server that answers every request with a redirect to ``target``."""

    def __init__(self, target: str, status: int) -> None:
        self.requests: list[tuple[str, str, bool]] = []
        redirector = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _redirect(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                has_key = "Authorization" in self.headers
                redirector.requests.append((self.command, self.path, has_key))
                self.send_response(status)
                self.send_header("Location", target + self.path)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = _redirect

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("status", [301, 307, 308])
def test_redirects_are_not_followed(emu, set_conn, export, status, no_env_proxies):
    redirector = Redirector(emu.url, status)
    try:
        conn = set_conn(host=redirector.url, password=SECRET_KEY, extra={"project_id": 1})
        hook = PostHogHook(conn, retry_policy=FAST_RETRY)
        with pytest.raises(PostHogAPIError) as info:
            hook.create_backfill(
                export["id"], hours_ago(emu, 3).isoformat(), hours_ago(emu, 1).isoformat()
            )
        error = info.value
        assert not isinstance(error, PostHogAmbiguousRequestError)
        assert error.status == status and error.method == "POST"
        assert f"the server redirects to {emu.url}{backfills_path(export['id'])}" in error.detail
        assert "redirects are not followed" in error.detail
        with pytest.raises(PostHogAPIError, match="redirects are not followed") as again:
            arun(AsyncPostHogHook(conn, retry_policy=FAST_RETRY).list_runs(export["id"]))
        assert again.value.status == status
        assert [method for method, _, _ in redirector.requests] == ["POST", "GET"]
        assert emu.requests == []  # nothing went on to where the redirect pointed
    finally:
        redirector.stop()


# ---------------------------------------------------------------------------------------------
# 4. Ingestion hosts do not serve this API


@pytest.mark.parametrize(
    ("host", "app"),
    [
        ("https://us.i.posthog.com", "https://us.posthog.com"),
        ("us.i.posthog.com", "https://us.posthog.com"),
        ("https://eu.i.posthog.com/", "https://eu.posthog.com"),
        ("https://EU.i.posthog.com", "https://eu.posthog.com"),
    ],
)
def test_ingestion_hosts_are_refused_naming_the_app_host(set_conn, host, app):
    conn = set_conn(host=host, password=SECRET_KEY, extra={"project_id": 1})
    with pytest.raises(PostHogConfigError) as info:
        PostHogHook(conn).list_batch_exports()
    message = str(info.value)
    assert "ingestion host" in message and message.endswith(f"use the app host {app}")
    with pytest.raises(PostHogConfigError, match=f"use the app host {app}$"):
        arun(AsyncPostHogHook(conn).list_runs("any"))


def test_app_hosts_stay_accepted():
    assert api.base_url_from("https://us.posthog.com") == "https://us.posthog.com"
    assert api.base_url_from("eu.posthog.com") == "https://eu.posthog.com"
