"""scripts/setup-debian, the README's first command, as root and as a user, with and without sudo.

The script runs for real, with stand-ins for the programs that would change the machine
(``dpkg-query``, ``apt-get``, ``sudo``, ``id`` and ``python3``) first on a PATH that holds
nothing else but a few basic tools: each stand-in records how it was called, so the tests see
what the script would run and with whose rights, without installing anything.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "setup-debian"
# What the script and the stand-ins use from the real system: no sudo, no apt, no python.
BASIC_TOOLS = ("bash", "env", "grep", "dirname", "mkdir", "chmod", "cat")

# Every stand-in appends one line to $CALLS: its name, whether it runs through sudo, its arguments.
_LOG = 'printf "%s via-sudo=%s %s\\n" "$(basename "$0")" "${VIA_SUDO:-no}" "$*" >> "$CALLS"\n'
STANDINS = {
    # "install ok installed" unless the package is listed in $MISSING
    "dpkg-query": 'for p; do :; done\ncase " $MISSING " in *" $p "*) exit 1;; esac\n'
    'printf "install ok installed"\n',
    "apt-get": _LOG,
    "sudo": _LOG + 'while [ "${1#-}" != "$1" ]; do [ "$1" = -u ] && shift; shift; done\n'
    'VIA_SUDO=yes exec "$@"\n',
    "id": '[ "${VIA_SUDO:-no}" = yes ] && echo 0 || echo "$FAKE_UID"\n',
    "basename": 'echo "${1##*/}"\n',
    # python3 -m venv [--clear] DIR: a "venv" whose python (and the doit it installs) are
    # stand-ins too
    "python3": _LOG + '[ "$1 $2" = "-m venv" ] || exit 3\nvenv="${!#}"\nmkdir -p "$venv/bin"\n'
    'cat "$VENV_PYTHON" > "$venv/bin/python"\nchmod +x "$venv/bin/python"\n',
}
VENV_PYTHON = (
    '[ "$1" = -c ] && exit 0\n' + _LOG + '[ "$*" = "-m pip -q install -e .[test]" ] || exit 4\n'
    'printf "#!/bin/bash\\nexit 0\\n" > "${0%/*}/doit"\nchmod +x "${0%/*}/doit"\n'
)


@dataclass
class Setup:
    returncode: int
    output: str
    calls: list[str]
    checkout: Path


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    """A checkout holding the real script, and bin/ with the stand-ins and the basic tools."""
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    shutil.copy2(SCRIPT, checkout / "scripts" / "setup-debian")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in BASIC_TOOLS:
        found = shutil.which(tool)
        assert found, f"{tool} is not installed"
        (bin_dir / tool).symlink_to(found)
    for name, body in STANDINS.items():
        (bin_dir / name).write_text("#!/bin/bash\n" + body)
        (bin_dir / name).chmod(0o755)
    (tmp_path / "venv-python").write_text("#!/bin/bash\n" + VENV_PYTHON)
    return tmp_path


def run_setup(
    sandbox: Path, *, uid: int, missing: str = "", sudo: bool = True, sudo_user: str = ""
) -> Setup:
    if not sudo:
        (sandbox / "bin" / "sudo").unlink()
    calls = sandbox / "calls.log"
    calls.write_text("")
    env = {
        "PATH": str(sandbox / "bin"),
        "CALLS": str(calls),
        "MISSING": missing,
        "FAKE_UID": str(uid),
        "HOME": str(sandbox),
        "VENV_PYTHON": str(sandbox / "venv-python"),
    }
    if sudo_user:
        env["SUDO_USER"] = sudo_user
    checkout = sandbox / "checkout"
    proc = subprocess.run(
        [str(checkout / "scripts" / "setup-debian")],
        cwd=sandbox,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return Setup(
        proc.returncode, proc.stdout + proc.stderr, calls.read_text().splitlines(), checkout
    )


def venv_calls(setup: Setup, via_sudo: str = "no", clear: bool = False) -> list[str]:
    """What a good run does after apt: make .venv, install the checkout into it, nothing else."""
    venv = setup.checkout / ".venv"
    make = f"python3 via-sudo={via_sudo} -m venv {'--clear ' if clear else ''}{venv}"
    return [make, f"python via-sudo={via_sudo} -m pip -q install -e .[test]"]


@pytest.mark.unit
def test_root_installs_with_apt_directly(sandbox: Path) -> None:
    setup = run_setup(sandbox, uid=0, missing="bc genext2fs")
    assert setup.returncode == 0, setup.output
    assert setup.calls == [
        "apt-get via-sudo=no update -qq",
        "apt-get via-sudo=no install -y -qq --no-install-recommends bc genext2fs",
        *venv_calls(setup),
    ]
    assert ".venv/bin/doit rootfs" in setup.output


@pytest.mark.unit
def test_user_installs_with_apt_through_sudo_and_the_rest_as_themselves(sandbox: Path) -> None:
    setup = run_setup(sandbox, uid=1000, missing="qemu-user")
    assert setup.returncode == 0, setup.output
    assert setup.calls == [
        "sudo via-sudo=no env DEBIAN_FRONTEND=noninteractive apt-get update -qq",
        "apt-get via-sudo=yes update -qq",
        "sudo via-sudo=no env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
        "--no-install-recommends qemu-user",
        "apt-get via-sudo=yes install -y -qq --no-install-recommends qemu-user",
        *venv_calls(setup),
    ]
    assert "with sudo" in setup.output


@pytest.mark.unit
def test_user_without_sudo_is_told_what_to_install(sandbox: Path) -> None:
    setup = run_setup(sandbox, uid=1000, missing="make cpio", sudo=False)
    assert setup.returncode != 0
    assert setup.calls == []  # nothing half-done
    assert "make cpio" in setup.output and "as root" in setup.output
    assert "apt-get install --no-install-recommends make cpio" in setup.output
    assert not (setup.checkout / ".venv").exists()


@pytest.mark.unit
def test_user_without_sudo_needs_no_root_when_nothing_is_missing(sandbox: Path) -> None:
    setup = run_setup(sandbox, uid=1000, sudo=False)
    assert setup.returncode == 0, setup.output
    assert setup.calls == venv_calls(setup)


@pytest.mark.unit
def test_run_with_sudo_makes_the_environment_as_the_user(sandbox: Path) -> None:
    setup = run_setup(sandbox, uid=0, sudo_user="alice")
    assert setup.returncode == 0, setup.output
    venv = setup.checkout / ".venv"
    assert setup.calls == [
        f"sudo via-sudo=no -u alice -H python3 -m venv {venv}",
        *venv_calls(setup, via_sudo="yes")[:1],
        f"sudo via-sudo=no -u alice -H {venv}/bin/python -m pip -q install -e .[test]",
        *venv_calls(setup, via_sudo="yes")[1:],
    ]


@pytest.mark.unit
def test_second_run_reuses_the_environment(sandbox: Path) -> None:
    first = run_setup(sandbox, uid=0)
    assert first.returncode == 0, first.output
    again = run_setup(sandbox, uid=0)
    assert again.returncode == 0, again.output
    assert again.calls == venv_calls(again)[1:]  # only the (idempotent) pip install


@pytest.mark.unit
def test_moved_environment_is_remade(sandbox: Path) -> None:
    first = run_setup(sandbox, uid=0)
    assert first.returncode == 0, first.output
    doit = first.checkout / ".venv" / "bin" / "doit"
    doit.write_text("#!/nonexistent/old/checkout/.venv/bin/python\n")  # what a moved venv has
    again = run_setup(sandbox, uid=0)
    assert again.returncode == 0, again.output
    assert again.calls == venv_calls(again, clear=True)
    assert "remaking" in again.output
    assert os.access(doit, os.X_OK)


@pytest.mark.unit
@pytest.mark.skipif(not (REPO / ".git").exists(), reason="not a git checkout")
def test_readme_scripts_are_committed_executable() -> None:
    """A clone runs `scripts/setup-debian` and `.ci/run` as they are: their git mode is 755."""
    listed = subprocess.run(
        ["git", "ls-files", "-s", "scripts/setup-debian", ".ci/run"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    modes = {line.split("\t")[1]: line.split()[0] for line in listed}
    assert modes == {"scripts/setup-debian": "100755", ".ci/run": "100755"}


def copy_checkout(dest: Path) -> Path:
    """This checkout's files (as they are now, edits included), as a second checkout would have
    them, with its engine saying where it was imported from."""
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", ".venv", "build", "dl", "output")
    for name in ("dodo.py", "pyproject.toml"):
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, dest / name)
    for name in ("fwbuild", "recipes", "patches", "configs", "src", "tests"):
        shutil.copytree(REPO / name, dest / name, ignore=skip, symlinks=True)
    with (dest / "fwbuild" / "__init__.py").open("a") as fh:
        fh.write('\nimport sys\n\nprint(f"fwbuild engine: {__file__}", file=sys.stderr)\n')
    return dest


def test_two_checkouts_each_run_their_own_engine(tmp_path: Path) -> None:
    """doit and the tests in each checkout import that checkout's fwbuild, whatever else is
    installed (this machine's Python may well have an engine installed from elsewhere)."""
    checkouts = [copy_checkout(tmp_path / name) for name in ("a", "b")]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FWBUILD_", "PYTHON"))}
    env.pop("ROOTFS_DIR", None)
    for checkout in checkouts:
        own = f"fwbuild engine: {checkout / 'fwbuild' / '__init__.py'}"
        others = [f"fwbuild engine: {c}" for c in checkouts if c != checkout]
        listing = subprocess.run(
            [sys.executable, "-m", "doit", "list"],
            cwd=checkout,
            env={
                **env,
                "FWBUILD_PKI_DIR": str(checkout / "pki"),
                "FWBUILD_SECRETS": str(checkout / "secrets" / "secrets.toml"),
            },
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert listing.returncode == 0, listing.stderr
        assert "rootfs" in listing.stdout
        assert own in listing.stderr and not any(o in listing.stderr for o in others)

        # the README's test command, from the checkout: its tests import its engine too
        probe = "test_which_engine.py"
        (checkout / "tests" / probe).write_text(
            "from pathlib import Path\n\nimport fwbuild\n\n\n"
            "def test_engine() -> None:\n"
            f"    assert Path(fwbuild.__file__) == Path({str(checkout)!r}) / 'fwbuild' / "
            "'__init__.py'\n"
        )
        tests = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/" + probe],
            cwd=checkout,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert tests.returncode == 0, tests.stdout + tests.stderr


@pytest.mark.unit
@pytest.mark.skipif(
    os.environ.get("FWBUILD_TEST_SETUP") != "1",
    reason="runs the real set-up (pip into two fresh .venv/, about a minute): FWBUILD_TEST_SETUP=1",
)
def test_real_setup_in_two_clones(tmp_path: Path) -> None:
    """The real script in two clones of this repository: each .venv/ runs its own engine, from
    anywhere (a script run by path, like bench/, gets no checkout on sys.path from its cwd)."""
    clones = [tmp_path / "a", tmp_path / "b"]
    for clone in clones:
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        setup = subprocess.run(
            [str(clone / "scripts" / "setup-debian")],
            capture_output=True,
            text=True,
            check=False,
            timeout=900,
        )
        assert setup.returncode == 0, setup.stdout + setup.stderr
    with (clones[1] / "fwbuild" / "__init__.py").open("a") as fh:
        fh.write('\nimport sys\n\nprint("engine of clone b", file=sys.stderr)\n')
    for clone in clones:
        where = subprocess.run(
            [
                str(clone / ".venv" / "bin" / "python"),
                "-c",
                "import fwbuild; print(fwbuild.__file__)",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        )
        assert where.stdout.strip() == str(clone / "fwbuild" / "__init__.py")
        listing = subprocess.run(
            [str(clone / ".venv" / "bin" / "doit"), "list"],
            cwd=clone,
            env={
                **{k: v for k, v in os.environ.items() if not k.startswith("FWBUILD_")},
                "FWBUILD_PKI_DIR": str(clone / "pki"),
                "FWBUILD_SECRETS": str(clone / "secrets" / "secrets.toml"),
            },
            capture_output=True,
            text=True,
            check=False,
        )
        assert listing.returncode == 0, listing.stderr
        assert ("engine of clone b" in listing.stderr) == (clone == clones[1])
