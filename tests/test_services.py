"""Real Debian services from their packages, started as systemd would start them (issue 16).

Each package is the top-level .deb alone (apt-get download, cached in /var/cache/prodng-test-debs
between runs), run with no flags unless its Debian setup needs one, and probed from inside with a
real client: the package's own when it has one, else the protocol spoken by perl (in every Debian
root). CI runs a representative third (the `packages` marker deselects the rest by default: `-m packages`
runs those, `-m ''` all).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import Prodng, own_netns

pytestmark = [pytest.mark.root, pytest.mark.slow]

CACHE = Path(os.environ.get("PRODNG_TEST_DEBS", "/var/cache/prodng-test-debs"))

# perl speaks the protocols: connect, send bytes (hex), print what came back (printable) and its hex.
PERL = (
    "perl -MIO::Socket::INET -MIO::Socket::UNIX -e '"
    "($a, $p, $x) = @ARGV; $s = ($a =~ m{^/} ? IO::Socket::UNIX->new(Peer => $a) : IO::Socket::INET->new("
    'PeerAddr => $a, Proto => $p, Timeout => 3)) or die "connect $a: $!\\n"; '
    'print $s pack("H*", $x); $b = ""; eval { local $SIG{ALRM} = sub { die }; alarm 3; '
    '$s->recv($r, 65536); $b .= $r; while (length $r) { last if $p eq "udp"; '
    '$s->recv($r, 65536); $b .= $r } }; $h = unpack("H*", $b); $b =~ s/[^\\x20-\\x7e]/./g; print "$b\\n$h\\n"\''
)
# NetBIOS session header, SMB1 NEGOTIATE offering "NT LM 0.12": smbd answers with an SMB (or SMB2) header
SMB1_HEADER = "ff534d4272000000001801280000000000000000000000000000000000000000"
SMB1_BODY = "000c00" + "02" + b"NT LM 0.12\0".hex()
SMB1_NEGOTIATE = f"{len(bytes.fromhex(SMB1_HEADER + SMB1_BODY)):08x}" + SMB1_HEADER + SMB1_BODY
HTTP_GET = "474554202f20485454502f312e300d0a0d0a"  # GET / HTTP/1.0


def hexs(text: str) -> str:
    return text.encode().hex()


def dns_query(name: str) -> str:
    """A standard A query, recursion desired, id 0x1234."""
    labels = "".join(f"{len(p):02x}{p.encode().hex()}" for p in name.split("."))
    return f"123401000001000000000000{labels}0000010001"


@dataclass(frozen=True)
class Case:
    package: str
    probe: str  # shell run inside with exec
    expect: str  # in the probe's output
    args: tuple[str, ...] = ()  # what the package's Debian setup needs (documented per case)
    ci: bool = False


def tcp(address: str, send: str = "", proto: str = "tcp") -> str:
    return f"{PERL} {address} {proto} '{send}'"


CASES = [
    Case("postgresql-15", "su postgres -s /bin/sh -c \"psql -tAc 'select 40+2'\"", "42", ci=True),
    Case("mariadb-server", "mariadb -N -e 'select 40+2'", "42"),
    Case("apache2", tcp("127.0.0.1:80", HTTP_GET), "HTTP/1.1 200 OK"),
    Case("openssh-server", tcp("127.0.0.1:22"), "SSH-2.0-OpenSSH", ci=True),
    Case("haproxy", tcp("/run/haproxy/admin.sock", hexs("show info\n")), "Name: HAProxy", ci=True),
    Case("bind9", "rndc status", "server is up and running"),
    # MQTT CONNECT (clean session, keepalive 60, empty client id) answered by a CONNACK (0x20)
    Case("mosquitto", tcp("127.0.0.1:1883", "100c00044d5154540402003c0000"), "\n2002", ci=True),
    Case("varnish", tcp("127.0.0.1:6081", HTTP_GET), "Via: 1.1"),
    Case("prometheus-node-exporter", tcp("127.0.0.1:9100", hexs("GET /metrics HTTP/1.0\r\n\r\n")), "node_"),
    Case("unbound", tcp("127.0.0.1:53", dns_query("localhost"), "udp"), "\n1234", ci=True),
    Case(
        "rsyslog",
        "logger -t probe hello-from-prodng && sleep 0.3 && grep -h hello-from-prodng /var/log/syslog /var/log/messages",
        "probe",
    ),
    Case("nginx-light", tcp("127.0.0.1:80", HTTP_GET), "HTTP/1.1 200 OK"),
    Case("redis-server", "redis-cli ping", "PONG", ci=True),
    Case("tinyproxy", tcp("127.0.0.1:8888", hexs("GET http://127.0.0.1:1/ HTTP/1.0\r\n\r\n")), "tinyproxy"),
    Case("squid", tcp("127.0.0.1:3128", hexs("GET http://127.0.0.1:1/ HTTP/1.0\r\n\r\n")), "squid"),
    Case("dovecot-imapd", tcp("127.0.0.1:143"), "* OK"),
    Case("exim4-daemon-light", tcp("127.0.0.1:25"), "ESMTP Exim", ci=True),
    Case("memcached", tcp("127.0.0.1:11211", hexs("version\r\n")), "VERSION", ci=True),
    Case("lighttpd", tcp("127.0.0.1:80", HTTP_GET), "Server: lighttpd"),
    Case("cron", "kill -0 $(cat /run/crond.pid) && echo cron-alive", "cron-alive"),
    Case("dnsmasq", tcp("127.0.0.1:53", dns_query("localhost"), "udp"), "\n1234", ci=True),
    Case("postfix", tcp("127.0.0.1:25"), "ESMTP Postfix"),
    Case("vsftpd", tcp("127.0.0.1:21"), "220 (vsFTPd"),
    # knot-resolver enables only kresd.target: its README.Debian says to enable kresd@1 (so does systemd)
    Case("knot-resolver", tcp("127.0.0.1:53", dns_query("localhost"), "udp"), "\n1234", args=("--unit", "kresd@1")),
    Case("nsd", tcp("127.0.0.1:53", dns_query("localhost"), "udp"), "\n1234"),
    # nmbd waits for a broadcast interface, which a loopback-only container lacks: smbd alone (with one,
    # every unit: test_samba_starts_whole_on_a_network)
    Case("samba", tcp("127.0.0.1:445", SMB1_NEGOTIATE), "SMB", args=("--unit", "smbd")),
    Case(
        "prosody",
        tcp(
            "127.0.0.1:5222",
            hexs(
                "<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' "
                "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
            ),
        ),
        "stream:features",
    ),
    # SNMPv1 GET sysDescr.0, community public
    Case(
        "snmpd",
        tcp("127.0.0.1:161", "302602010004067075626c6963a019020101020100020100300e300c06082b060102010101000500", "udp"),
        "Linux",
    ),
    # LDAPv3 anonymous bind: success is resultCode 0 in a BindResponse (0x61)
    Case("slapd", tcp("127.0.0.1:389", "300c020101600702010304008000"), "61070a0100"),
    # monit's HTTP interface (what `monit status` talks to) is off in Debian's monitrc: its pid file then
    Case("monit", "kill -0 $(cat /run/monit.pid) && echo monit-alive", "monit-alive"),
]


@pytest.fixture(scope="module")
def debs() -> Path:
    """The top-level packages, downloaded once into a cache that outlives the test session."""
    from test_payload import apt_download

    CACHE.mkdir(parents=True, exist_ok=True)
    wanted = [c.package for c in CASES] + ["chrony", "openvpn", "php8.2-fpm"]
    apt_download(CACHE, [p for p in wanted if not list(CACHE.glob(f"{p}_*.deb"))])
    return CACHE


def deb_of(folder: Path, package: str) -> str:
    return str(sorted(folder.glob(f"{package}_*.deb"))[-1])


def probe(prodng: Prodng, name: str, command: str, expect: str, timeout: float = 30.0) -> str:
    last = ""

    def answered() -> bool:
        nonlocal last
        result = prodng("exec", name, "--", "sh", "-c", command, check=False)
        last = result.stdout + result.stderr
        return expect in last

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answered():
            return last
        time.sleep(0.5)
    raise AssertionError(f"{name}: no {expect!r} from {command!r}; last answer: {last[-600:]}")


def services_of(prodng: Prodng, name: str) -> list[dict[str, object]]:
    found = prodng.info(name)["services"]
    assert isinstance(found, list)
    return found


def stopped_quickly(prodng: Prodng, name: str, limit: float = 2.0) -> None:
    began = time.monotonic()
    prodng("stop", name)
    took = time.monotonic() - began
    assert took < limit, f"stop of {name} took {took:.1f} s"
    assert prodng.info(name)["state"] == "exited"


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, id=c.package, marks=() if c.ci else (pytest.mark.packages,)) for c in CASES],
)
def test_package_starts_and_answers(prodng: Prodng, template: str, debs: Path, container: str, case: Case) -> None:
    result = prodng(template, deb_of(debs, case.package), "none", "--name", container, *case.args, timeout=900)
    assert result.stdout.strip() == container
    info = prodng.info(container)
    assert info["state"] == "running"
    services = info["services"]
    assert isinstance(services, list) and services
    probe(prodng, container, case.probe, case.expect)
    stopped_quickly(prodng, container)


@pytest.mark.packages
def test_samba_starts_whole_on_a_network(prodng: Prodng, template: str, debs: Path, container: str) -> None:
    """No --unit: on a bridge (dhcp) nmbd has the broadcast interface it waits for, and samba starts as
    on a Debian host: nmbd and smbd up, samba-ad-dc skipped by its ExecCondition (no AD DC set up).
    Created in the host's namespace (apt fetches the dependencies), started in the test's own."""
    prodng("create", template, deb_of(debs, "samba"), "dhcp", "--name", container, timeout=900)
    with own_netns(prodng.root, f"prodng-smb{os.getpid()}") as net:
        try:
            net("start", container, timeout=300)
            units = {s["name"]: s["state"] for s in services_of(net, container)}
            assert units["nmbd.service"] == "running" and units["smbd.service"] == "running", units
            assert units["samba-ad-dc.service"] == "skipped", units
            probe(net, container, tcp("127.0.0.1:445", SMB1_NEGOTIATE), "SMB")
            stopped_quickly(net, container)
        finally:
            net("rm", "-f", container, check=False)


def test_chrony_fails_for_want_of_cap_sys_time(prodng: Prodng, template: str, debs: Path, container: str) -> None:
    """chrony's unit needs CAP_SYS_TIME, which no container gets: run says so and exits non-zero."""
    result = prodng(template, deb_of(debs, "chrony"), "none", "--name", container, check=False, timeout=900)
    assert result.returncode == 6, result.stderr
    assert "ConditionCapability=CAP_SYS_TIME not met" in result.stderr


def test_openvpn_instance_from_a_bound_config(
    prodng: Prodng, template: str, debs: Path, container: str, tmp_path: Path
) -> None:
    """openvpn's generator starts openvpn@NAME for /etc/openvpn/NAME.conf: here one bound from the host
    (a null device: a container has no /dev/net/tun)."""
    conf = tmp_path / "probe.conf"
    conf.write_text("dev null\nproto udp\nlport 11940\nverb 3\n")
    prodng(template, deb_of(debs, "openvpn"), "none", "--name", container, "--bind", f"{conf}:/etc/openvpn/probe.conf")
    names = [s["name"] for s in services_of(prodng, container)]
    assert "openvpn@probe.service" in names
    prodng.wait_for(
        lambda: "link local (bound): [AF_INET][undef]:11940" in prodng("logs", container).stdout,
        what="openvpn's socket (its syslog, through /dev/log)",
    )
    stopped_quickly(prodng, container)


NGINX_SITE = r"""server {
    listen 80 default_server;
    root /var/www/html;
    index index.php;
    location ~ \.php$ {
        include snippets/fastcgi-php.conf;
        fastcgi_pass unix:/run/php/php8.2-fpm.sock;
    }
}
"""


def test_nginx_and_php_fpm_serve_a_php_page(
    prodng: Prodng, template: str, debs: Path, container: str, tmp_path: Path
) -> None:
    site, page = tmp_path / "default", tmp_path / "index.php"
    site.write_text(NGINX_SITE)
    page.write_text('<?php echo "sum=", 40 + 2, " from ", PHP_SAPI;\n')
    prodng(
        template,
        deb_of(debs, "nginx-light"),
        deb_of(debs, "php8.2-fpm"),
        "none",
        "--name",
        container,
        "--bind",
        f"{site}:/etc/nginx/sites-available/default",
        "--bind",
        f"{page}:/var/www/html/index.php",
        timeout=900,
    )
    units = {s["name"]: s["state"] for s in services_of(prodng, container)}
    assert units["nginx.service"] == "running" and units["php8.2-fpm.service"] == "running"
    rows = prodng.json(
        "query", f"SELECT name, state FROM prodng_services WHERE container = '{container}' ORDER BY name"
    )
    assert rows == [{"name": n, "state": s} for n, s in sorted(units.items())]
    listed = [r for r in prodng.json("ls") if r["name"] == container]  # type: ignore[union-attr, index]
    assert listed[0]["units"] == f"{len(units)}/{len(units)}"
    get = tcp("127.0.0.1:80", hexs("GET /index.php HTTP/1.0\r\n\r\n"))
    probe(prodng, container, get, "sum=42 from fpm-fcgi")
    before = services_of(prodng, container)
    prodng("reload", container)  # nginx's ExecReload=, php-fpm's ExecReload= (kill -USR2 $MAINPID)
    probe(prodng, container, get, "sum=42 from fpm-fcgi")
    after = services_of(prodng, container)
    assert [s["pid"] for s in after] == [s["pid"] for s in before]
    stopped_quickly(prodng, container)


def test_a_service_that_dies_at_start_fails_run(prodng: Prodng, template: str, container: str, tmp_path: Path) -> None:
    from test_payload import built_deb

    unit = "[Service]\nExecStart=/bin/sh -c 'echo opening the widget store; echo no widgets here >&2; exit 3'\n"
    deb = built_deb(tmp_path, "prodng-dies", "", {"lib/systemd/system/prodng-dies.service": unit})
    result = prodng(template, deb, "none", "--name", container, check=False)
    assert result.returncode == 6, result.stderr
    assert "prodng-dies.service failed: exited with 3 at start" in result.stderr
    assert "opening the widget store" in result.stderr and "no widgets here" in result.stderr  # its last lines
    assert prodng("info", container, check=False).returncode == 3  # nothing half-made is left


FLAKY = (
    "n=$(cat /run/flaky-count 2>/dev/null || echo 0); echo $((n + 1)) > /run/flaky-count; echo attempt $n; "
    '[ "$n" -ge 2 ] && exec sleep 100000; sleep 1.5; exit 3'
)
# The syslog line goes from a sender that lives on after it: the init learns a sender's unit from its
# session (getsid of the datagram's SCM_CREDENTIALS pid), which a sender already gone cannot tell, as
# journald cannot (a `logger` lost that race under load).
SYSLOG = (
    'perl -MSocket -e "socket(S, PF_UNIX, SOCK_DGRAM, 0) and connect(S, pack_sockaddr_un(q(/dev/log)))'
    ' and send(S, q(<13>widgetd: no widgets configured), 0); sleep 2"'
)
BROKEN = f"echo opening the widget store; {SYSLOG}; echo giving up >&2; sleep 1; exit 7"


def agent_metrics(prodng: Prodng) -> dict[str, dict[tuple[str, str], float]]:
    """GET /metrics of a real agent: family -> (container, unit) -> value."""
    from agent_helpers import metric_families

    return {
        f.name: {(s.labels.get("name", ""), s.labels.get("unit", "")): s.value for s in f.samples}
        for f in metric_families(prodng)
    }


def test_info_and_metrics_tell_each_unit_its_failure_and_restarts(
    prodng: Prodng, template: str, container: str, tmp_path: Path
) -> None:
    """Three units of one payload: one steady, one that fails twice and is restarted (Restart=on-failure),
    one that dies after it started. info names the dead one with its exit code and its own last lines
    (stdout, stderr and its syslog), the text form too; /metrics says which are up and how often each
    was restarted, as info does."""
    from test_payload import built_deb

    units = {
        "prodng-steady": "[Service]\nExecStart=/bin/sleep 100000\n",
        "prodng-flaky": f"[Unit]\nAfter=prodng-steady.service\n[Service]\nRestart=on-failure\nRestartSec=0.2\n"
        f"ExecStart=/bin/sh -c '{FLAKY}'\n",
        "prodng-broken": f"[Unit]\nAfter=prodng-flaky.service\n[Service]\nExecStart=/bin/sh -c '{BROKEN}'\n",
    }
    files = {f"lib/systemd/system/{name}.service": text for name, text in units.items()}
    prodng(template, built_deb(tmp_path, "prodng-units", "", files), "none", "--name", container)

    def settled() -> dict[str, dict[str, object]] | None:
        found = {str(s["name"]).removesuffix(".service"): s for s in services_of(prodng, container)}
        flaky, broken = found["prodng-flaky"], found["prodng-broken"]
        done = broken["state"] == "failed" and flaky["restarts"] == 2 and flaky["state"] == "running"
        return found if done else None

    found = prodng.wait_for(settled, timeout=30, what="the broken unit dead, the flaky one up after 2 restarts")
    broken = found["prodng-broken"]
    assert (broken["exit_code"], broken["error"]) == (7, "main process exited with 7")
    log = broken["log"]
    assert isinstance(log, list)
    assert "opening the widget store" in log and "giving up" in log
    assert any("widgetd" in line and "no widgets configured" in line for line in log), log
    assert found["prodng-flaky"]["log"] == ["attempt 0", "attempt 1", "attempt 2"]
    assert found["prodng-steady"]["state"] == "running" and found["prodng-steady"]["restarts"] == 0

    text = prodng("info", container).stdout
    assert "  prodng-broken.service  failed: main process exited with 7\n" in text
    assert "      | giving up\n" in text
    assert "  prodng-flaky.service  running  pid " in text and "restarts 2" in text

    metrics = agent_metrics(prodng)
    up, restarts = metrics["prodng_service_up"], metrics["prodng_service_restarts"]
    assert {u: up[(container, f"{u}.service")] for u in units} == {
        "prodng-steady": 1.0,
        "prodng-flaky": 1.0,
        "prodng-broken": 0.0,
    }
    assert {u: restarts[(container, f"{u}.service")] for u in units} == {
        "prodng-steady": 0.0,
        "prodng-flaky": 2.0,
        "prodng-broken": 0.0,
    }
