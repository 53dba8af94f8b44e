"""Merging the packages' staged files, the board overlay and the permissions table into the rootfs.

``$ROOTFS_DIR`` is built anew under a temporary name next to it and swapped in, so it is never
half-installed. Ownership, device nodes and modes that a non-root build cannot (or should not)
put on disk are recorded in the manifest, which is what the image writers read: the rootfs
directory is a view for people and tests, the manifest is the truth.

The permissions table (Buildroot's device table, simplified) has one entry a line::

    # path                           type mode uid gid  major minor | link target
    /etc/sysconfig/ppp/chap-secrets  f    0600 0   0
    /var/run                         d    0755 0   0
    /dev/console                     c    0600 0   0    5 1
    /dev/ptyp0                       c    0666 0   0    2 0
    /sbin/init                       l    0777 0   0    ../bin/busybox

``f`` changes an existing file's mode and owner; ``d`` creates a directory; ``c``/``b`` add device
nodes; ``l`` adds a symbolic link. A ``{a..b}`` range in the path, e.g. ``/dev/ptyp{0..15}``,
makes one entry per number (the minor number counts up with it).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from fwbuild import sizes
from fwbuild.errors import BuildError, ConfigError
from fwbuild.project import Project, stamp_matches, write_stamp
from fwbuild.recipe import expand_target_files
from fwbuild.unpack import remove_tree, replace_tree

ELF_MAGIC = b"\x7fELF"
_RANGE = re.compile(r"\{(\d+)\.\.(\d+)\}")


@dataclass
class Entry:
    path: str  # absolute inside the image, e.g. "/usr/sbin/pppd"
    type: str  # f, d, l, c, b
    mode: int
    uid: int = 0
    gid: int = 0
    package: str = ""
    sha256: str = ""
    size: int = 0
    target: str = ""  # symlink target
    major: int = 0
    minor: int = 0


def parse_permissions(file: Path) -> list[Entry]:
    entries: list[Entry] = []
    for number, raw in enumerate(file.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        where = f"{file}:{number}"
        if len(fields) < 5 or fields[1] not in {"f", "d", "c", "b", "l"}:
            raise ConfigError(
                f"{where}: expected `path type mode uid gid [major minor | target]` with type "
                f"f, d, c, b or l, got {raw.strip()!r}"
            )
        path, kind, mode, uid, gid, *rest = fields
        if not path.startswith("/") or ".." in path.split("/"):
            raise ConfigError(f"{where}: path {path!r} must be absolute and without '..'")
        try:
            numbers = (int(mode, 8), int(uid), int(gid))
        except ValueError:
            raise ConfigError(f"{where}: mode (octal), uid and gid must be numbers") from None
        major = minor = 0
        target = ""
        if kind in {"c", "b"}:
            if len(rest) != 2 or not all(r.isdigit() for r in rest):
                raise ConfigError(f"{where}: device {path} needs `major minor` numbers")
            major, minor = int(rest[0]), int(rest[1])
        elif kind == "l":
            if len(rest) != 1:
                raise ConfigError(f"{where}: link {path} needs exactly one target")
            target = rest[0]
        elif rest:
            raise ConfigError(f"{where}: unexpected fields {rest} for type {kind}")
        match = _RANGE.search(path)
        span = range(int(match[1]), int(match[2]) + 1) if match else [None]
        for offset, n in enumerate(span):
            entries.append(
                Entry(
                    path=path
                    if n is None
                    else path[: match.start()] + str(n) + path[match.end() :],
                    type=kind,
                    mode=numbers[0],
                    uid=numbers[1],
                    gid=numbers[2],
                    package="permissions",
                    target=target,
                    major=major,
                    minor=minor + offset,
                )
            )
    return entries


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def manifest_path(project: Project) -> Path:
    rootfs = project.board.paths.rootfs
    return rootfs.with_name(f"{rootfs.name}.manifest.json")


def owner_path(project: Project) -> Path:
    """Records which directory this build made, so a foreign ROOTFS_DIR is never replaced."""
    rootfs = project.board.paths.rootfs
    return rootfs.with_name(f"{rootfs.name}.owner")


def rootfs_uptodate(project: Project) -> bool:
    paths = project.board.paths
    return (
        paths.rootfs.is_dir()
        and paths.output.is_dir()
        and stamp_matches(project.rootfs_stamp, project.rootfs_key)
        and sizes.budget_holds(project)  # a lowered budget checks the image again
    )


def _check_rootfs_dir_is_ours(project: Project) -> None:
    rootfs = project.board.paths.rootfs
    if not rootfs.exists() or not any(rootfs.iterdir()):
        return
    try:
        recorded = owner_path(project).read_text().strip()
    except FileNotFoundError:
        recorded = None
    if recorded != str(rootfs):
        raise ConfigError(
            f"ROOTFS_DIR {rootfs} exists, is not empty and was not made by this build "
            f"(no manifest at {manifest_path(project)} records it); the rootfs task replaces that "
            "directory whole, so point ROOTFS_DIR at a new or empty directory"
        )


def _copy_file(src: Path, dest: Path, strip: str | None) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    if strip:
        with dest.open("rb") as fh:
            is_elf = fh.read(4) == ELF_MAGIC
        if is_elf:
            import subprocess

            result = subprocess.run([strip, str(dest)], capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise BuildError(f"stripping {dest} failed: {result.stderr.strip()}")


def assemble(project: Project) -> list[Entry]:
    """Build the rootfs in a temporary directory, then swap it in; returns the manifest."""
    started = time.monotonic()
    project.rootfs_stamp.unlink(missing_ok=True)
    _check_rootfs_dir_is_ours(project)
    rootfs = project.board.paths.rootfs
    rootfs.parent.mkdir(parents=True, exist_ok=True)
    tmp = rootfs.with_name(f".{rootfs.name}.new")
    remove_tree(tmp)
    tmp.mkdir()
    entries: dict[str, Entry] = {}
    strip = project.toolchain.env()["STRIP"]
    try:
        for name, pkg in project.packages.items():
            staging = project.stagingdir(name)
            files, missing = expand_target_files(pkg, staging)
            if missing:
                raise BuildError(
                    f"{staging} lacks {', '.join(missing)} (target_files of {pkg.recipe_file}); "
                    f"run `doit install:{name}` again",
                    package=name,
                )
            for rel, mode in files:
                path = "/" + rel
                if path in entries:
                    raise BuildError(
                        f"packages {entries[path].package} and {name} both install {path}; "
                        f"remove it from the target_files of one of them ({pkg.recipe_file})",
                        package=name,
                    )
                src, dest = staging / rel, tmp / rel
                if src.is_symlink():
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    target = os.readlink(src)
                    os.symlink(target, dest)
                    entries[path] = Entry(path, "l", 0o777, package=name, target=target)
                    continue
                _copy_file(src, dest, strip if mode & 0o111 else None)
                entries[path] = Entry(path, "f", mode, package=name)
        overlay = project.board.overlay
        if overlay and overlay.is_dir():
            for dirpath, dirnames, filenames in os.walk(overlay):
                dirnames.sort()
                links = [d for d in dirnames if (Path(dirpath) / d).is_symlink()]
                for fname in sorted([*filenames, *links]):
                    src = Path(dirpath) / fname
                    rel = src.relative_to(overlay).as_posix()
                    if src.is_symlink():
                        target = os.readlink(src)
                        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                        (tmp / rel).unlink(missing_ok=True)
                        os.symlink(target, tmp / rel)
                        entries["/" + rel] = Entry(
                            "/" + rel, "l", 0o777, package="overlay", target=target
                        )
                        continue
                    (tmp / rel).unlink(missing_ok=True)
                    _copy_file(src, tmp / rel, None)
                    mode = src.stat().st_mode & 0o7777
                    entries["/" + rel] = Entry("/" + rel, "f", mode, package="overlay")
        if project.board.permissions:
            for perm in parse_permissions(project.board.permissions):
                _apply_permission(tmp, entries, perm, project.board.permissions)
        for name, pkg in project.packages.items():  # what recipes say the image must provide
            for need in pkg.needs_devices:
                if need.path not in entries:
                    kind = need.kind
                    entries[need.path] = Entry(need.path, kind, need.mode, package=name,
                                               major=need.major, minor=need.minor)  # fmt: skip
                    (tmp / need.path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        _add_directories(tmp, entries)
        epoch = source_date_epoch()
        for entry in entries.values():
            on_disk = tmp / entry.path.lstrip("/")
            if entry.type == "f":
                on_disk.chmod(entry.mode)
                entry.size = on_disk.stat().st_size
                entry.sha256 = _sha256(on_disk)
            elif entry.type == "d":
                on_disk.chmod(entry.mode)
            if entry.type in {"f", "d", "l"}:
                os.utime(on_disk, (epoch, epoch), follow_symlinks=False)
        sizes.check_rootfs(project, entries.values())  # the flash budget, before any swap
    except BaseException:
        remove_tree(tmp)
        raise
    manifest = sorted(entries.values(), key=lambda e: e.path)
    replace_tree(tmp, rootfs)
    write_manifest(project, manifest)
    write_outputs(project, manifest)
    write_stamp(
        project.rootfs_stamp,
        project.rootfs_key,
        inputs=project.rootfs_inputs,
        seconds=round(time.monotonic() - started, 3),
    )
    return manifest


def source_date_epoch() -> int:
    raw = os.environ.get("SOURCE_DATE_EPOCH", "0")
    if not raw.isdigit():
        raise ConfigError(f"SOURCE_DATE_EPOCH={raw!r} is not a number of seconds")
    return int(raw)


def write_outputs(project: Project, manifest: list[Entry]) -> None:
    """The output directory, replaced whole: images, kernel, manifest, sha256sums."""
    from fwbuild import images
    from fwbuild.sbom import write_sbom

    out = project.board.paths.output
    tmp = out.with_name(f".{out.name}.new")
    remove_tree(tmp)
    # An image holding files only root may read (a private key, chap-secrets) is itself a
    # secret: the directory is private from its creation and the images are 0600.
    secret = any(e.type == "f" and not e.mode & 0o004 for e in manifest)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.mkdir(mode=0o700 if secret else 0o755)
    rootfs = project.board.paths.rootfs
    epoch = source_date_epoch()
    try:
        names = []
        for name, pkg in project.packages.items():
            for image, rel in pkg.image_files.items():
                src = project.stagingdir(name) / rel
                if not src.is_file():
                    raise BuildError(f"{src} (image_files of {pkg.recipe_file}) is missing; run "
                                     f"`doit install:{name}` again", package=name)  # fmt: skip
                shutil.copyfile(src, tmp / image)
                names.append(image)
        images.write_tar(manifest, rootfs, tmp / "rootfs.tar", epoch)
        images.write_cpio(manifest, rootfs, tmp / "rootfs.cpio.gz", epoch)
        names += ["rootfs.tar", "rootfs.cpio.gz"]
        if images.write_ext2(manifest, tmp / "rootfs.tar", tmp / "rootfs.ext2"):
            names.append("rootfs.ext2")
        if secret:
            for image in ("rootfs.tar", "rootfs.cpio.gz", "rootfs.ext2"):
                if (tmp / image).exists():
                    (tmp / image).chmod(0o600)
        sizes.check_images(project, manifest, tmp)  # the initramfs budget, before the swap
        shutil.copyfile(manifest_path(project), tmp / "manifest.json")
        names.append("manifest.json")
        names.append(write_sbom(project, tmp))  # describes the files above (fwbuild.sbom)
        images.write_sha256sums(tmp, names)
    except BaseException:
        remove_tree(tmp)
        raise
    replace_tree(tmp, out)


def _apply_permission(tmp: Path, entries: dict[str, Entry], perm: Entry, table: Path) -> None:
    on_disk = tmp / perm.path.lstrip("/")
    if perm.type == "f":
        existing = entries.get(perm.path)
        if existing is None or existing.type != "f":
            raise ConfigError(
                f"{table}: {perm.path} is listed as a file but no package or overlay installs "
                "it; fix the path or remove the line"
            )
        existing.mode, existing.uid, existing.gid = perm.mode, perm.uid, perm.gid
        return
    if perm.type == "d":
        on_disk.mkdir(parents=True, exist_ok=True)
    elif perm.type == "l":
        on_disk.parent.mkdir(parents=True, exist_ok=True)
        if on_disk.is_symlink() or on_disk.exists():
            on_disk.unlink()
        os.symlink(perm.target, on_disk)
    else:
        on_disk.parent.mkdir(parents=True, exist_ok=True)
    entries[perm.path] = perm


def _add_directories(tmp: Path, entries: dict[str, Entry]) -> None:
    for dirpath, dirnames, _ in os.walk(tmp):
        for d in dirnames:
            path = "/" + (Path(dirpath) / d).relative_to(tmp).as_posix()
            if path not in entries and not (Path(dirpath) / d).is_symlink():
                entries[path] = Entry(path, "d", 0o755)


def write_manifest(project: Project, manifest: list[Entry]) -> None:
    path = manifest_path(project)
    # The image's manifest holds no build paths (reproducible); the rootfs path it was made in is
    # kept beside it for the "is this ROOTFS_DIR ours" check.
    data = {"entries": [asdict(e) for e in manifest]}
    owner = owner_path(project)
    owner.write_text(str(project.board.paths.rootfs) + "\n")
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)
