"""The VPN daemons' configuration, rendered from the board's [vpn] section.

racoon.conf (road-warrior responder with certificates; its proposals, ike_proposals() and
esp_algorithms() below, accept today's clients and, with [vpn] legacy_proposals, Windows XP),
l2tpd.conf (LNS, stock 0.69 keys) and pppd's options.l2tp (MS-CHAPv2; MPPE spelled for the
pppd variant that is built). The secrets (chap-secrets) and the certificates are separate
packages, so that changing a password or reissuing a certificate re-renders only what depends
on it.

l2tpd 0.69 reads its configuration in 100-byte pieces, so a longer line (a comment too) is cut
and the rest is parsed as a line of its own: its templates carry no comments.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from _vpn import SETTINGS, vpn_settings

from fwbuild.recipe import Package
from fwbuild.templates import render

if TYPE_CHECKING:
    from fwbuild.steps import Context

TEMPLATES = "configs/templates"

# The MPPE/MPPC patch replaces stock pppd's MPPE options by its own; an unknown option makes
# pppd exit, so the spelling must follow the variant.
MPPE_OPTIONS = {
    True: "mppe required,stateless,no40,no56\nmppc",
    False: "require-mppe-128\nnomppe-stateful",
}


# racoon's phase 1 proposals, strongest first (the initiator's order decides which one is used).
# Today's clients (Windows 10/11, macOS, Android's legacy L2TP, NetworkManager-l2tp with
# strongSwan or libreswan) propose AES-CBC 128/256 with SHA-1/SHA-256 and MODP-2048 or
# MODP-1024, in IKEv1 main mode with RSA signatures; Windows XP proposes only
# 3DES/SHA-1/MODP-1024. ``legacy`` ([vpn] legacy_proposals) keeps 3DES and MODP-1024.
IKE_ENCRYPTION = ("aes 256", "aes 128")
IKE_HASH = ("sha256", "sha1")


# strongSwan 5.9 sends in IKEv1 a single transform, the first algorithm of each kind in its
# default proposal: AES-CBC-128, SHA-256, MODP-3072 (seen on the wire from Debian 12's charon).
IKE_GROUPS = ("modp3072", "modp2048")


def ike_proposals(*, legacy: bool) -> list[tuple[str, str, str]]:
    """(encryption, hash, DH group) of each phase 1 proposal, strongest first."""
    groups = (*IKE_GROUPS, "modp1024") if legacy else IKE_GROUPS
    proposals = [(e, h, g) for g in groups for e in IKE_ENCRYPTION for h in IKE_HASH]
    if legacy:
        proposals += [("3des", "sha1", g) for g in ("modp2048", "modp1024")]
    return proposals


def ike_proposal_blocks(*, legacy: bool) -> str:
    return "".join(
        f"\tproposal {{\n\t\tencryption_algorithm {enc};\n\t\thash_algorithm {hash_};\n"
        f"\t\tauthentication_method rsasig;\n\t\tdh_group {group};\n\t}}\n"
        for enc, hash_, group in ike_proposals(legacy=legacy)
    )


def esp_algorithms(*, legacy: bool) -> tuple[str, str]:
    """Phase 2 (ESP) encryption and HMAC lists for racoon's sainfo. HMAC-SHA-256 needs the
    kernel's RFC 4868 truncation (patches/linux/2.6.11/0006-…) to interoperate."""
    encryption = ["aes 256", "aes 128"] + (["3des"] if legacy else [])
    authentication = ["hmac_sha256", "hmac_sha1"] + (["hmac_md5"] if legacy else [])
    return ", ".join(encryption), ", ".join(authentication)


class VpnConfig(Package):
    name = "vpn-config"
    version = "1"
    license = "MIT"
    variants = ("mppc",)
    board_sections = ("vpn", "network")
    settings = {s: SETTINGS[s] for s in board_sections}
    # The server's templates, and a client profile's (racoon initiator, SPD rules, LAC).
    board_files = (
        f"{TEMPLATES}/racoon.conf.in",
        f"{TEMPLATES}/l2tpd.conf.in",
        f"{TEMPLATES}/options.l2tp.in",
        f"{TEMPLATES}/setkey.conf.in",
        f"{TEMPLATES}/client/racoon.conf.in",
        f"{TEMPLATES}/client/setkey.conf.in",
        f"{TEMPLATES}/client/l2tpd.conf.in",
        f"{TEMPLATES}/client/options.l2tp.in",
    )
    target_files = {"etc/sysconfig/*.conf": 0o644, "etc/sysconfig/ppp/options.l2tp": 0o644}
    OUTPUTS = {
        "racoon.conf.in": "etc/sysconfig/racoon.conf",
        "setkey.conf.in": "etc/sysconfig/setkey.conf",
        "l2tpd.conf.in": "etc/sysconfig/l2tpd.conf",
        "options.l2tp.in": "etc/sysconfig/ppp/options.l2tp",
    }
    toolchain = "none"

    def install(self, ctx: Context) -> None:
        vpn = vpn_settings(self)
        natt = vpn.nat_traversal
        esp_encryption, esp_authentication = esp_algorithms(legacy=vpn.legacy_proposals)
        values = {
            "ike_proposals": ike_proposal_blocks(legacy=vpn.legacy_proposals),
            "esp_encryption": esp_encryption,
            "esp_authentication": esp_authentication,
            "wan_ip": vpn.wan.ip,
            "natt_listen": f"\tisakmp_natt {vpn.wan.ip} [4500];\n" if natt else "",
            "nat_traversal": "on" if natt else "off",
            "server_cert": f"{vpn.server_name}-cert.pem",
            "server_key": f"{vpn.server_name}-key.pem",
            "server_name": vpn.server_name,
            "server_address": vpn.server_address,
            "client_user": vpn.client_user or "",
            "client_cert": f"{vpn.client_user}-cert.pem",
            "client_key": f"{vpn.client_user}-key.pem",
            "client_pool": vpn.pool_text,
            "ppp_ip": vpn.ppp.ip,
            "mppe_options": MPPE_OPTIONS[self.variant("mppc")],
            "ms_dns": "\n".join(f"ms-dns {a}" for a in vpn.dns),
            "mtu": vpn.mtu,
            # pppd's packet log (LCP/CHAP/CCP) in syslog; off in production
            "ppp_debug": "debug" if vpn.ppp_debug else "",
        }
        templates = f"{TEMPLATES}/client" if vpn.role == "client" else TEMPLATES
        for template, target in self.OUTPUTS.items():
            source = self.board_file(f"{templates}/{template}")
            if not source.exists():
                continue
            out = ctx.staging / target
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(render(source, values))
