"""pppd's chap-secrets for the VPN users, mode 0600, root only.

Passwords come from the secrets file outside the repository (FWBUILD_SECRETS, default
~/.config/fwbuild/<board>-secrets.toml); when it does not exist, strong random passwords are
generated into it (mode 0600) and its path is printed. Passwords never reach logs or stamps:
the stamp holds a keyed digest of them (``_vpn.passwords_digest``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from _vpn import SETTINGS, load_passwords, passwords_digest, pppd_word, secrets_path, vpn_settings

from fwbuild.recipe import Package

if TYPE_CHECKING:
    from fwbuild.steps import Context


class VpnSecrets(Package):
    name = "vpn-secrets"
    version = "1"
    license = "MIT"
    board_sections = ("vpn", "secrets", "network")
    settings = {s: SETTINGS[s] for s in board_sections}
    target_files = {"etc/sysconfig/ppp/chap-secrets": 0o600}
    toolchain = "none"
    dynamic = True  # the secrets file is created by install and edited by people
    shared_cache = False  # its outputs are keys and passwords: never in a shared build cache

    def validate(self) -> None:
        vpn = vpn_settings(self)
        path = secrets_path(self)
        for user, password in load_passwords(path, vpn.users, create=False).items():
            pppd_word(password, what=f"the password of {user!r} in {path}")

    def protected_paths(self):
        # the file: no tree may be its directory or hold it (a tree beside it is fine)
        return {secrets_path(self): "the secrets file (FWBUILD_SECRETS / [secrets] path)"}

    def users(self, vpn):
        """Whose secrets chap-secrets holds: a client profile's only its own user's."""
        return (vpn.client_user,) if vpn.client_user else vpn.users

    def runtime_inputs(self):
        return passwords_digest(self, self.users(vpn_settings(self)))

    def install(self, ctx: Context) -> None:
        vpn = vpn_settings(self)
        path = secrets_path(self)
        passwords = load_passwords(path, vpn.users, create=True)
        server = pppd_word(vpn.server_name, what="[vpn] server_name")
        lines = ["# client\tserver\tsecret\tIP addresses (* = any from l2tpd's range)"]
        for user in self.users(vpn):
            secret = pppd_word(passwords[user], what=f"the password of {user!r} in {path}")
            client = pppd_word(user, what=f"user name {user!r}")
            # The server field must equal pppd's `name` (l2tpd's `name`); an empty address list
            # would allow no address at all and make IPCP fail.
            lines.append(f"{client}\t{server}\t{secret}\t*")
        out = ctx.staging / "etc/sysconfig/ppp/chap-secrets"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.touch(mode=0o600)
        out.chmod(0o600)
        out.write_text("\n".join(lines) + "\n")
