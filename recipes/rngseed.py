"""rngseed: credits a saved or provisioned seed to the kernel's entropy pool at boot.

Our own program (src/rngseed/): OpenSSL 3 under racoon waits on /dev/random until the 2.6.11
kernel's pool is readable, which on a freshly booted router it is not (README, "Entropy").
"""

from fwbuild.kinds import DeviceNeed, MakePackage


class Rngseed(MakePackage):
    name = "rngseed"
    version = "1"
    license = "MIT"
    local_source = "src/rngseed"
    install_files = {"usr/sbin/rngseed": ("rngseed", 0o755)}
    needs_devices = (
        DeviceNeed("/dev/random", "c", 1, 8, 0o644, "RNDADDENTROPY"),
        DeviceNeed("/dev/urandom", "c", 1, 9, 0o644, "the next boot's seed"),
    )
