"""ppp-2.4.3's source, shared by the ppp recipe and by linux's stock-MPPE variant (its driver
ships inside ppp's tarball, in ``linux/mppe/``).

samba.org is ppp's only upstream host, so the tarball has a durable fallback: the ``ppp-2.4.3``
tag of Paul Mackerras' public git repository, as our reproducible tar (a different file, with
its own digest; the build, the SBOM and the report say which one was used).
"""

from fwbuild.recipe import GitSource, Source

PPP_TARBALL = "ppp-2.4.3.tar.gz"

PPP_SOURCE = Source(
    PPP_TARBALL,
    urls=("https://download.samba.org/pub/ppp/ppp-2.4.3.tar.gz",),
    sha256="1e0fddb5f53613dd14ab10b25435e88092fed1eff09b4ac4448d5be01f3b0b11",
    fallbacks=(
        GitSource(
            "https://github.com/paulusmack/ppp.git",
            "f8583676904957554c5a8bd14ede415688835f6c",  # tag ppp-2.4.3
            filename="ppp-2.4.3-git-f8583676.tar",
            sha256="01c379c9939c08eb4b887b301ef03a3e9ed5ef6947d81826d980cf93cbb06274",
        ),
    ),
)
