"""Client profiles: what each VPN user receives, per operating system (vpn-pki writes them into
the PKI directory's certs/, next to the Windows XP bundle; they never enter the image).

- ``<user>-windows.ps1``: Windows 10/11, a PowerShell script that imports the PKCS#12 bundle into
  the Local Machine store (Import-PfxCertificate) and creates the connection (Add-VpnConnection
  -TunnelType L2tp -AuthenticationMethod MSChapv2 -EncryptionLevel Required).
- ``<user>.mobileconfig``: macOS and iOS, a configuration profile with the certificate (PKCS#12)
  and an L2TP VPN payload that authenticates the machine with it.
- ``<user>-linux/``: plain strongSwan (ipsec.conf, ipsec.secrets, certificates) or libreswan
  (a conn file, the bundle for ``ipsec import``), xl2tpd and pppd configuration, a script that
  installs and connects with either, and a NetworkManager-l2tp keyfile. The independent-client
  test (tests/test_real_clients.py) connects with exactly these files and the stock packages.

Each carries the user's password (the PPP secret, and the bundle's import password), so every
file is written private (mode 0600, directories 0700), replaced atomically, and never printed.
No file pins proposals: the clients' own defaults are what the server must accept.
"""

from __future__ import annotations

import base64
import os
import plistlib
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from _vpn import pppd_word

from fwbuild.errors import ConfigError


@dataclass(frozen=True)
class ClientProfile:
    user: str
    password: str
    server_name: str  # certificate CN and l2tpd/pppd name
    server_address: str  # where clients reach racoon
    server_dn: str  # the server certificate's subject, "C=NL, O=Vonk, CN=siso.vonk"
    ca_name: str  # the CA certificate's common name (libreswan's NSS nickname)
    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes
    p12: bytes  # the user's bundle (key, certificate, CA), encrypted with ``password``
    mtu: int


def _distinguished_name(name) -> str:  # name: cryptography.x509.Name
    """A subject in the order it is encoded, as strongSwan and libreswan write it."""
    from cryptography.x509.oid import NameOID

    short = {NameOID.COUNTRY_NAME: "C", NameOID.ORGANIZATION_NAME: "O",
             NameOID.ORGANIZATIONAL_UNIT_NAME: "OU", NameOID.COMMON_NAME: "CN",
             NameOID.LOCALITY_NAME: "L", NameOID.STATE_OR_PROVINCE_NAME: "ST",
             NameOID.EMAIL_ADDRESS: "E"}  # fmt: skip
    parts = []
    for attribute in name:
        key = short.get(attribute.oid)
        value = str(attribute.value)
        if key is None or any(c in value for c in ',"=\\'):
            raise ConfigError(
                f"the certificate subject {name.rfc4514_string()} has an attribute the client "
                f"profiles cannot spell ({attribute.oid.dotted_string} = {value!r}); use C, O, "
                "OU, CN, L, ST without commas, quotes or '=' in [pki] ca_subject"
            )
        parts.append(f"{key}={value}")
    return ", ".join(parts)


def server_identity(cert_pem: bytes) -> str:
    from cryptography import x509

    return _distinguished_name(x509.load_pem_x509_certificate(cert_pem).subject)


def common_name(cert_pem: bytes) -> str:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    cert = x509.load_pem_x509_certificate(cert_pem)
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


# --- Linux ------------------------------------------------------------------------------------
def _strongswan_conf(p: ClientProfile) -> str:
    return f"""\
# strongSwan (ipsec starter, IKEv1) for the L2TP/IPsec VPN {p.server_name}, user {p.user}.
# Proposals are strongSwan's defaults; the server accepts them. leftsendcert=always: racoon
# asks for no certificate, and strongSwan sends one only when asked (as NetworkManager-l2tp sets).
config setup

conn {p.server_name}
	keyexchange=ikev1
	authby=rsasig
	type=transport
	leftcert={p.user}-cert.pem
	leftsendcert=always
	leftprotoport=17/1701
	right={p.server_address}
	rightid="{p.server_dn}"
	rightprotoport=17/1701
	auto=add
"""


def _libreswan_conf(p: ClientProfile) -> str:
    return f"""\
# libreswan (IKEv1) for the L2TP/IPsec VPN {p.server_name}, user {p.user}: goes into
# /etc/ipsec.d/. The certificate is {p.user}.p12, imported into NSS by connect.sh.
conn {p.server_name}
	ikev2=no
	authby=rsasig
	type=transport
	left=%defaultroute
	leftcert={p.user}
	leftid=%fromcert
	leftrsasigkey=%cert
	leftprotoport=17/1701
	right={p.server_address}
	rightid="{p.server_dn}"
	rightrsasigkey=%cert
	rightprotoport=17/1701
	auto=add
"""


# libreswan 4 accepts IKEv1 (which L2TP/IPsec clients use) only with this global setting;
# connect.sh keeps the system's file as /etc/ipsec.conf.orig.
LIBRESWAN_SETUP = """\
config setup
	ikev1-policy=accept

include /etc/ipsec.d/*.conf
"""


def _xl2tpd_conf(p: ClientProfile) -> str:
    # xl2tpd's own defaults otherwise (no "tx bps": the firmware's l2tpd accepts speed 0)
    return f"""\
[lac {p.server_name}]
lns = {p.server_address}
pppoptfile = /etc/ppp/options.l2tpd.{p.server_name}
length bit = yes
"""


def _pppd_options(p: ClientProfile) -> str:
    user = pppd_word(p.user, what=f"user name {p.user!r}")
    password = pppd_word(p.password, what=f"the password of {p.user!r}")
    return f"""\
# pppd (started by xl2tpd) for {p.server_name}: MS-CHAPv2 and MPPE-128, as the server requires.
ipcp-accept-local
ipcp-accept-remote
refuse-eap
refuse-pap
refuse-chap
refuse-mschap
require-mschap-v2
require-mppe-128
noauth
nodefaultroute
mtu {p.mtu}
mru {p.mtu}
user {user}
password {password}
"""


CONNECT_SH = """\
#!/bin/sh
# Install this profile and connect: sh connect.sh strongswan|libreswan  (as root; needs the
# stock packages: strongswan-starter + strongswan-charon, or libreswan + libnss3-tools; and
# xl2tpd, ppp). Disconnect: echo "d {name}" > /var/run/xl2tpd/l2tp-control; ipsec down {name}
set -e
here=$(cd "$(dirname "$0")" && pwd)
stack=${{1:-strongswan}}
umask 077
mkdir -p /etc/xl2tpd /etc/ppp /var/run/xl2tpd
cp "$here/xl2tpd.conf" /etc/xl2tpd/xl2tpd.conf
cp "$here/options.l2tpd.{name}" /etc/ppp/options.l2tpd.{name}
case "$stack" in
strongswan)
	mkdir -p /etc/ipsec.d/cacerts /etc/ipsec.d/certs /etc/ipsec.d/private
	cp "$here/strongswan/ipsec.conf" /etc/ipsec.conf
	cp "$here/strongswan/ipsec.secrets" /etc/ipsec.secrets
	cp "$here/strongswan/cacert.pem" /etc/ipsec.d/cacerts/{name}-ca.pem
	cp "$here/strongswan/{user}-cert.pem" /etc/ipsec.d/certs/
	cp "$here/strongswan/{user}-key.pem" /etc/ipsec.d/private/
	ipsec start
	until ipsec status >/dev/null 2>&1; do sleep 1; done
	sleep 2
	ipsec up {name}
	;;
libreswan)
	mkdir -p /etc/ipsec.d /run/pluto
	# libreswan 4 refuses IKEv1 unless ikev1-policy=accept (a global setting)
	[ -f /etc/ipsec.conf.orig ] || cp /etc/ipsec.conf /etc/ipsec.conf.orig 2>/dev/null || true
	cp "$here/libreswan/ipsec.conf" /etc/ipsec.conf
	cp "$here/libreswan/{name}.conf" /etc/ipsec.d/{name}.conf
	[ -f /var/lib/ipsec/nss/cert9.db ] || ipsec initnss
	# the CA first, trusted, under its own name; then the user's key and certificate
	certutil -A -n "{ca}" -t "CT,," -a -i "$here/cacert.pem" -d sql:/var/lib/ipsec/nss
	pk12util -i "$here/{user}.p12" -d sql:/var/lib/ipsec/nss -W "$(cat "$here/p12-password")"
	if [ -d /run/systemd/system ]; then systemctl restart ipsec
	else ipsec pluto --config /etc/ipsec.conf; fi
	until ipsec whack --status >/dev/null 2>&1; do sleep 1; done
	ipsec auto --add {name}
	ipsec auto --up {name}
	;;
*) echo "usage: $0 strongswan|libreswan" >&2; exit 2 ;;
esac
pidof xl2tpd >/dev/null || xl2tpd
until [ -p /var/run/xl2tpd/l2tp-control ]; do sleep 1; done
echo "c {name}" > /var/run/xl2tpd/l2tp-control
"""


def _keyfile_value(value: str) -> str:
    """A value for NetworkManager's keyfile (GKeyFile): backslash escapes, no leading blank."""
    value = value.replace("\\", "\\\\")
    return "\\s" + value[1:] if value.startswith(" ") else value


def _network_manager(p: ClientProfile, directory: str) -> str:
    return f"""\
# NetworkManager-l2tp: copy to /etc/NetworkManager/system-connections/ (mode 0600), copy
# {p.user}.p12 and cacert.pem to {directory}/, then: nmcli connection reload
[connection]
id={p.server_name}
uuid={uuid.uuid5(uuid.NAMESPACE_DNS, f"{p.user}@{p.server_name}")}
type=vpn
autoconnect=false

[vpn]
service-type=org.freedesktop.NetworkManager.l2tp
gateway={p.server_address}
user-auth-type=password
user={p.user}
password-flags=0
ipsec-enabled=yes
machine-auth-type=tls
machine-ca={directory}/cacert.pem
machine-cert={directory}/{p.user}.p12
machine-key={directory}/{p.user}.p12
machine-certpass-flags=0
ipsec-remote-id={p.server_dn}
refuse-eap=yes
refuse-pap=yes
refuse-chap=yes
refuse-mschap=yes
require-mppe-128=yes
mtu={p.mtu}
mru={p.mtu}

[vpn-secrets]
password={_keyfile_value(p.password)}
machine-certpass={_keyfile_value(p.password)}

[ipv4]
method=auto
never-default=true

[ipv6]
method=ignore
"""


def linux_profile(p: ClientProfile) -> dict[str, str | bytes]:
    """The files of ``<user>-linux/``, by relative path."""
    directory = f"/etc/ipsec.d/{p.server_name}"
    return {
        "connect.sh": CONNECT_SH.format(name=p.server_name, user=p.user, ca=p.ca_name),
        "xl2tpd.conf": _xl2tpd_conf(p),
        f"options.l2tpd.{p.server_name}": _pppd_options(p),
        "strongswan/ipsec.conf": _strongswan_conf(p),
        "strongswan/ipsec.secrets": f": RSA {p.user}-key.pem\n",
        "strongswan/cacert.pem": p.ca_pem,
        f"strongswan/{p.user}-cert.pem": p.cert_pem,
        f"strongswan/{p.user}-key.pem": p.key_pem,
        "libreswan/ipsec.conf": LIBRESWAN_SETUP,
        f"libreswan/{p.server_name}.conf": _libreswan_conf(p),
        f"{p.user}.p12": p.p12,
        "p12-password": p.password,
        "cacert.pem": p.ca_pem,
        f"networkmanager/{p.server_name}.nmconnection": _network_manager(p, directory),
    }


# --- Windows 10/11 ----------------------------------------------------------------------------
def _ps_single(text: str) -> str:
    """A PowerShell verbatim string: '…' with ' doubled (nothing else is special in it)."""
    return "'" + text.replace("'", "''") + "'"


def windows_script(p: ClientProfile) -> str:
    p12 = base64.b64encode(p.p12).decode()
    return f"""\
# L2TP/IPsec VPN {p.server_name} for {p.user}: Windows 10/11. Run in an elevated PowerShell:
#   powershell -ExecutionPolicy Bypass -File .\\{p.user}-windows.ps1 [-ServerBehindNat]
# It imports the certificate into the Local Machine store (L2TP/IPsec uses machine
# certificates) and creates the connection; connect from the network menu or with
#   rasdial {p.server_name} {p.user} <password>
# -ServerBehindNat: Windows talks to an L2TP/IPsec server behind NAT only with the registry
# value HKLM\\SYSTEM\\CurrentControlSet\\Services\\PolicyAgent
# AssumeUDPEncapsulationContextOnSendRule = 2 (DWORD); the switch sets it; reboot afterwards.
#Requires -RunAsAdministrator
param([switch]$ServerBehindNat)
$ErrorActionPreference = 'Stop'
$Name = {_ps_single(p.server_name)}
$Server = {_ps_single(p.server_address)}
$Password = ConvertTo-SecureString -String {_ps_single(p.password)} -AsPlainText -Force
$Bundle = Join-Path $env:TEMP {_ps_single(f"{p.user}-vpn.p12")}
[IO.File]::WriteAllBytes($Bundle, [Convert]::FromBase64String({_ps_single(p12)}))
try {{
    Import-PfxCertificate -FilePath $Bundle -CertStoreLocation 'Cert:\\LocalMachine\\My' `
        -Password $Password | Out-Null
}} finally {{
    Remove-Item -LiteralPath $Bundle -Force
}}
if (Get-VpnConnection -AllUserConnection -Name $Name -ErrorAction SilentlyContinue) {{
    Remove-VpnConnection -AllUserConnection -Name $Name -Force
}}
Add-VpnConnection -Name $Name -ServerAddress $Server -TunnelType L2tp `
    -AuthenticationMethod MSChapv2 -EncryptionLevel Required -AllUserConnection -Force
if ($ServerBehindNat) {{
    $Key = 'HKLM:\\SYSTEM\\CurrentControlSet\\Services\\PolicyAgent'
    New-ItemProperty -Path $Key -Name 'AssumeUDPEncapsulationContextOnSendRule' `
        -PropertyType DWord -Value 2 -Force | Out-Null
    Write-Host 'NAT-T enabled for servers behind NAT: reboot before connecting'
}}
Write-Host ('VPN connection ' + $Name + ' created; user name ' + {_ps_single(p.user)})
"""


# --- macOS and iOS ----------------------------------------------------------------------------
def mobileconfig(p: ClientProfile) -> bytes:
    ns = uuid.NAMESPACE_DNS
    cert_uuid = str(uuid.uuid5(ns, f"cert:{p.user}@{p.server_name}")).upper()
    vpn_uuid = str(uuid.uuid5(ns, f"vpn:{p.user}@{p.server_name}")).upper()
    ca_uuid = str(uuid.uuid5(ns, f"ca:{p.server_name}")).upper()
    ident = ".".join(reversed(p.server_name.split("."))) + ".vpn"
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    ca_der = x509.load_pem_x509_certificate(p.ca_pem).public_bytes(Encoding.DER)
    profile = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{ident}.{p.user}",
        "PayloadUUID": str(uuid.uuid5(ns, f"profile:{p.user}@{p.server_name}")).upper(),
        "PayloadDisplayName": f"VPN {p.server_name} ({p.user})",
        "PayloadContent": [
            {
                "PayloadType": "com.apple.security.root",
                "PayloadVersion": 1,
                "PayloadIdentifier": f"{ident}.ca",
                "PayloadUUID": ca_uuid,
                "PayloadDisplayName": p.ca_name,
                "PayloadContent": ca_der,
            },
            {
                "PayloadType": "com.apple.security.pkcs12",
                "PayloadVersion": 1,
                "PayloadIdentifier": f"{ident}.{p.user}.cert",
                "PayloadUUID": cert_uuid,
                "PayloadDisplayName": f"{p.user} ({p.server_name})",
                "PayloadContent": p.p12,
                "Password": p.password,
            },
            {
                "PayloadType": "com.apple.vpn.managed",
                "PayloadVersion": 1,
                "PayloadIdentifier": f"{ident}.{p.user}.l2tp",
                "PayloadUUID": vpn_uuid,
                "PayloadDisplayName": p.server_name,
                "UserDefinedName": p.server_name,
                "VPNType": "L2TP",
                "PPP": {
                    "CommRemoteAddress": p.server_address,
                    "AuthName": p.user,
                    "AuthPassword": p.password,
                    "CCPEnabled": 1,
                    "CCPMPPE128Enabled": 1,
                },
                "IPSec": {
                    "AuthenticationMethod": "Certificate",
                    "PayloadCertificateUUID": cert_uuid,
                },
                "IPv4": {"OverridePrimary": 0},
            },
        ],
    }
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML)


# --- writing ----------------------------------------------------------------------------------
def _write_private(path: Path, data: bytes, *, executable: bool = False) -> None:
    """Replace ``path`` atomically with a mode 0600 (0700) file; unchanged files are left."""
    if path.exists() and path.read_bytes() == data:
        path.chmod(0o700 if executable else 0o600)
        return
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o700 if executable else 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_profiles(certs: Path, p: ClientProfile) -> list[Path]:
    """Every OS's profile for one user into the PKI's certs/ directory; returns the paths."""
    written = []
    base = certs / f"{p.user}-linux"
    for rel, content in linux_profile(p).items():
        data = content.encode() if isinstance(content, str) else content
        path = base / rel
        _write_private(path, data, executable=rel.endswith(".sh"))
        path.parent.chmod(0o700)
        written.append(path)
    for path, data in (
        (certs / f"{p.user}-windows.ps1", windows_script(p).encode("utf-8-sig")),
        (certs / f"{p.user}.mobileconfig", mobileconfig(p)),
    ):
        _write_private(path, data)
        written.append(path)
    return written
