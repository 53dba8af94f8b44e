"""Bad input gets a clear error before anything is built: the board file, its profiles and the
overrides file against their schema, passwords Windows cannot use, and recipes that declare what
the board does not have. Every error names the file and the key; nothing is downloaded or made.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import jsonschema
import pytest
from support.doitrun import doit_env, run_doit
from support.genpkgs import make_dist, make_project

from fwbuild.errors import ConfigError
from fwbuild.project import Project

REPO = Path(__file__).resolve().parents[1]
SISO = REPO / "configs" / "siso.toml"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Everything a loaded SISO project may touch, in the test's directory."""
    for name in ("FWBUILD_OVERRIDES", "ROOTFS_DIR", "FWBUILD_OUTPUT_DIR", "FWBUILD_DL_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FWBUILD_BUILD_DIR", str(tmp_path / "build"))
    monkeypatch.setenv("FWBUILD_PKI_DIR", str(tmp_path / "pki"))
    monkeypatch.setenv("FWBUILD_SECRETS", str(tmp_path / "secrets.toml"))
    return tmp_path


def siso_board(tmp: Path, edits: dict[str, str] | None = None, name: str = "board.toml") -> Path:
    text = SISO.read_text()
    for old, new in (edits or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp / "configs" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def load_error(board: Path) -> str:
    with pytest.raises(ConfigError) as err:
        Project.load(board, REPO)
    return str(err.value)


TYPOS = {
    "section": ({"[system]": "[sytem]"}, "[sytem]", "did you mean [system]?"),
    "vpn-key": ({"ppp_debug = false": "ppp_degub = false"}, "[vpn] ppp_degub", "ppp_debug?"),
    "engine-key": ({'primary = ""': 'primery = ""'}, "[mirrors] primery", "primary?"),
    "natt-key": ({"nat_traversal = true": "nat_travesal = true"}, "[vpn] nat_travesal",
                 "nat_traversal?"),
    "natt-string": ({"nat_traversal = true": 'nat_traversal = "no"'}, "[vpn] nat_traversal",
                    "must be true or false"),
    "debug-string": ({"ppp_debug = false": 'ppp_debug = "false"'}, "[vpn] ppp_debug",
                     "must be true or false"),
    "users-not-list": ({'users = ["alice", "bob"]': 'users = "alice"'}, "[vpn] users",
                       "must be a list"),
    "mtu-string": ({"mtu = 1280": 'mtu = "1280"'}, "[vpn] mtu", "must be an integer"),
    "variant-string": ({"mppc = true": 'mppc = "yes"'}, "[variants] mppc",
                       "must be true or false"),
    "toolchain-key": ({'prefix = "i686-linux-gnu-"': 'prefx = "i686-linux-gnu-"'},
                      "[toolchains.kernel] prefx", "did you mean prefix?"),
    "syslog-value": ({'syslog = "buffer"': 'syslog = "ring"'}, "[system] syslog",
                     "'buffer' or 'console'"),
    "pki-signature": ({'signature = "sha256"': 'signature = "md5"'}, "[pki] signature", "sha1"),
    "revoked-stranger": ({"revoked = []": 'revoked = ["mallory"]'}, "[pki] revoked",
                         "'mallory'"),
    "downloads-timeout": ({"[rootfs]\n": '[downloads]\ntimeout = "30"\n\n[rootfs]\n'},
                          "[downloads] timeout", "must be a number"),
    "rootfs-size": ({"[rootfs]\n": '[rootfs]\nmax_size = "16 parsecs"\n'},
                    "[rootfs] max_size", '"64M"'),
}  # fmt: skip


@pytest.mark.unit
@pytest.mark.parametrize(("edits", "where", "what"), TYPOS.values(), ids=TYPOS.keys())
def test_board_typos_and_wrong_types_are_named(
    env: Path, edits: dict[str, str], where: str, what: str
) -> None:
    board = siso_board(env, edits)
    message = load_error(board)
    assert str(board) in message and where in message and what in message, message
    assert "Traceback" not in message and not (env / "build").exists()


@pytest.mark.unit
def test_every_problem_is_listed_in_one_message(env: Path) -> None:
    board = siso_board(
        env,
        {
            "[system]": "[sytem]",
            "ppp_debug = false": "ppp_degub = false",
            'primary = ""': 'primery = ""',
            "nat_traversal = true": 'nat_traversal = "no"',
        },
    )
    message = load_error(board)
    for part in ("[sytem]", "[vpn] ppp_degub", "[mirrors] primery", "[vpn] nat_traversal"):
        assert part in message, message
    assert "(4 problems)" in message and message.count(str(board)) == 1


@pytest.mark.unit
def test_sizes_and_download_settings_in_their_forms(env: Path) -> None:
    rootfs = '[rootfs]\nmax_size = "16M"\npackage_limits = { linux = 4194304, busybox = "1M" }\n'
    more = (
        '[image]\nmax_initramfs = "8MiB"\n\n[downloads]\ntimeout = 30\ndeadline = 60.5\n'
        'min_speed = 1024\nmax_size = "64M"\n\n[network]\n'
    )
    project = Project.load(siso_board(env, {"[rootfs]\n": rootfs, "[network]\n": more}), REPO)
    assert project.board.data["rootfs"]["max_size"] == "16M"


@pytest.mark.unit
def test_a_profile_error_names_the_file_that_sets_the_key(env: Path) -> None:
    base = siso_board(env, {"nat_traversal = true": "nat_traversal = 0"}, name="siso.toml")
    profile = env / "configs" / "client.toml"
    profile.write_text(
        (REPO / "configs" / "siso-client.toml").read_text().replace("[pki]", "[pki]\nrevokd = []")
    )
    message = load_error(profile)
    assert f"{base}: [vpn] nat_traversal must be true or false" in message, message
    assert f"{profile}: [pki] revokd: unknown key, did you mean revoked?" in message, message


@pytest.mark.unit
def test_siso_board_without_the_mppc_variant(env: Path) -> None:
    board = siso_board(env, {"\nmppc = true\n": "\n"})
    message = load_error(board)
    assert re.search(r"recipe \S+/recipes/(linux|ppp)\.py uses variant\(s\) mppc", message), message
    assert f"which {board} does not set in [variants]" in message


@pytest.mark.unit
def test_a_section_the_recipes_need_is_missing(env: Path) -> None:
    text = SISO.read_text()
    board = siso_board(env, {text[text.index("[vpn]") : text.index("[pki]")]: ""})
    assert f"{board}: [vpn] is missing." in load_error(board)


@pytest.mark.unit
def test_a_section_for_a_recipe_not_on_the_board(env: Path) -> None:
    board = siso_board(env, {'"base-files", ': ""})
    message = load_error(board)
    assert f"{board}: [system]: read only by recipe base-files" in message, message


@pytest.mark.unit
def test_typed_settings_and_the_validation_cache(env: Path) -> None:
    board = siso_board(env)
    project = Project.load(board, REPO)
    vpn = project.board.settings("vpn")
    assert vpn.nat_traversal is True and vpn.users == ["alice", "bob"]
    # what passed is remembered only in a build directory the build has made
    assert not (env / "build").exists()
    (env / "build" / "stamps").mkdir(parents=True)
    Project.load(board, REPO)
    assert list((env / "build" / "stamps").glob("board-checked-*.json"))
    # … and a changed board is checked again, whatever the cache holds
    board.write_text(board.read_text().replace("nat_traversal = true", 'nat_traversal = "no"'))
    assert "[vpn] nat_traversal must be true or false" in load_error(board)


def _secrets(env: Path, text: str) -> Path:
    path = env / "secrets.toml"
    path.write_text(text)
    path.chmod(0o600)
    return path


@pytest.mark.unit
def test_an_integer_password_must_be_a_string(env: Path) -> None:
    path = _secrets(env, '[users]\nalice = 12345678\nbob = "fine"\n')
    message = load_error(siso_board(env))
    assert f"the password of 'alice' in {path} must be a string" in message, message
    assert "no password" not in message


@pytest.mark.unit
def test_a_password_windows_cannot_use_is_refused(env: Path) -> None:
    path = _secrets(env, '[users]\nalice = "fine"\nbob = "pässwörd"\n')
    message = load_error(siso_board(env))
    assert f"the password of 'bob' in {path} has non-ASCII characters" in message, message
    assert "MS-CHAPv2" in message


@pytest.mark.unit
def test_overrides_file_typos(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    overrides = env / "local.toml"
    overrides.write_text(
        '[packages.ppp]\ntarbal = "/src/ppp.tar.gz"\nsah256 = "00"\n\n'
        '[files."x.patch"]\npath = "/src/x.patch"\nsha256 = "abcd"\n'
    )
    monkeypatch.setenv("FWBUILD_OVERRIDES", str(overrides))
    message = load_error(siso_board(env))
    assert str(overrides) in message, message
    assert "[packages.ppp] tarbal: unknown key, did you mean tarball?" in message
    assert "[packages.ppp] sah256: unknown key, did you mean sha256?" in message
    assert "[files.\"x.patch\"] sha256: 'abcd' is not a sha256 digest (64 hex digits)" in message


@pytest.mark.unit
def test_environment_flags_keep_their_errors(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FWBUILD_OFFLINE", "maybe")
    assert "FWBUILD_OFFLINE='maybe' is not a boolean" in load_error(siso_board(env))


# --- the published schema --------------------------------------------------------------------
@pytest.mark.unit
def test_published_schema_is_what_the_code_generates(tmp_path: Path) -> None:
    env = doit_env(
        FWBUILD_BUILD_DIR=str(tmp_path / "build"),
        FWBUILD_PKI_DIR=str(tmp_path / "pki"),
        FWBUILD_SECRETS=str(tmp_path / "secrets.toml"),
    )
    generated = subprocess.run(
        [sys.executable, "-m", "fwbuild.schema", "configs/siso.toml"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    committed = (REPO / "configs" / "board.schema.json").read_text()
    assert generated == committed, (
        "configs/board.schema.json is stale: python3 -m fwbuild.schema configs/siso.toml "
        "> configs/board.schema.json"
    )
    assert SISO.read_text().startswith("#:schema ./board.schema.json\n")


@pytest.mark.unit
def test_published_schema_checks_the_board_as_editors_would() -> None:
    schema = json.loads((REPO / "configs" / "board.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    board = tomllib.loads(SISO.read_text())
    assert list(validator.iter_errors(board)) == []
    board["sytem"] = board.pop("system")
    board["vpn"]["nat_traversal"] = "no"
    problems = {e.message for e in validator.iter_errors(board)}
    assert any("sytem" in p for p in problems) and any("'no' is not of type" in p for p in problems)


# --- recipes declaring what the board does not have --------------------------------------------
@pytest.fixture
def generated(tmp_path: Path) -> Path:
    return make_project(tmp_path / "proj", make_dist(tmp_path / "dist"), "http://127.0.0.1:9")


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))


def _refused(project: Path, *needles: str) -> str:
    run = run_doit(project, "list")
    assert run.returncode == 2, run.output
    assert "Traceback" not in run.output
    for needle in needles:
        assert needle in run.output, run.output
    assert not (project / "dl").exists() and not (project / "build").exists()
    return run.output


def test_recipe_variant_missing_from_the_board(generated: Path) -> None:
    _edit(generated / "configs" / "board.toml", "[variants]\nextra = true\n", "[variants]\n")
    _refused(generated, str(generated / "recipes" / "hello.py"), "variant(s) extra", "[variants]")


def test_recipe_variants_declaration_missing_from_the_board(generated: Path) -> None:
    _edit(generated / "recipes" / "libgreet.py", 'license = "MIT"', 'license = "MIT"\n    '
          'variants = ("fancy",)')  # fmt: skip
    _refused(generated, str(generated / "recipes" / "libgreet.py"), "variant(s) fancy")


def test_when_naming_an_unknown_variant(generated: Path) -> None:
    _edit(generated / "recipes" / "hello.py", 'when="+extra"', 'when="+extar"')
    out = _refused(generated, str(generated / "recipes" / "hello.py"), "variant(s) extar")
    assert "it sets: extra" in out


def test_malformed_when_condition(generated: Path) -> None:
    _edit(generated / "recipes" / "hello.py", 'when="+extra"', 'when="extra"')
    _refused(generated, str(generated / "recipes" / "hello.py"), "'extra' is not of the form")


@pytest.mark.parametrize(
    ("digest", "why"), [("abcd", "64 hex digits"), ("z" * 64, "64 hex digits")], ids=["4", "z"]
)
def test_recipe_digest_of_the_wrong_form(generated: Path, digest: str, why: str) -> None:
    recipe = generated / "recipes" / "libgreet.py"
    text = recipe.read_text()
    recipe.write_text(re.sub(r'sha256="[0-9a-f]{64}"', f'sha256="{digest}"', text))
    _refused(generated, str(recipe), "libgreet-1.0.tar.gz", f"sha256 '{digest}'", why)
