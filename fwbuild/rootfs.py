"""Merging the packages' staged files, the board overlay and the permissions table into the rootfs.

``$ROOTFS_DIR`` is built anew under a temporary name next to it and swapped in, so it is never
half-installed. Ownership, device nodes and modes that a non-root build cannot (or should not)
put on disk are recorded in the manifest, which is what the image writers read: the rootfs
directory is a view for people and tests, the manifest is the truth.

A link that a package or the overlay puts into the rootfs (``var/run -> /run``) is an entry of
the image, never a way out of the tree: every file, directory, mode and time is written through
descriptors opened from the tree's root without following links (``fwbuild.trees``), and a
package file, overlay file or permissions line that would go through a link, or replace a
directory, is an error naming it and the link. Which directories ROOTFS_DIR and the output
directory may be is ``fwbuild.trees``'s ownership rule.

The manifest's entries and the permissions table are ``fwbuild.manifest``.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import time
from pathlib import Path

from fwbuild.errors import BuildError, ConfigError
from fwbuild.fsutil import file_digest, source_date_epoch
from fwbuild.manifest import Entry, manifest_path, parse_permission_lines, write_manifest
from fwbuild.project import Project
from fwbuild.recipe import expand_target_files
from fwbuild.stamps import write_stamp
from fwbuild.trees import (
    MARKER,
    Guard,
    TreeConflict,
    check_target,
    claim,
    conflict_at,
    guard_for,
    open_dir,
    open_root,
    split,
    staged_tree,
)

ELF_MAGIC = b"\x7fELF"


ROOTFS_SETTING = "ROOTFS_DIR"
OUTPUT_SETTING = "FWBUILD_OUTPUT_DIR ([paths] output)"


def _strip(strip: str, paths: list[Path]) -> None:
    """Strip the ELF files among ``paths`` with one run of the target's strip (a process per
    file cost more than the stripping: ~30 ms each)."""
    elves = []
    for dest in paths:
        with dest.open("rb") as fh:
            if fh.read(4) == ELF_MAGIC:
                elves.append(str(dest))
    if elves:
        import subprocess

        result = subprocess.run([strip, *elves], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise BuildError(f"stripping {', '.join(elves)} failed: {result.stderr.strip()}")


class _Tree:
    """The rootfs being assembled, written only through descriptors that follow no link: a link
    the packages or the overlay put into it (``var/run -> /run``) is never written through."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.fd = open_root(root)

    def close(self) -> None:
        os.close(self.fd)

    def parent(self, rel: str, *, create: bool) -> tuple[int, str]:
        parts = split(rel)
        if not parts:
            raise TreeConflict(rel, "directory")
        return open_dir(self.fd, parts[:-1], create=create), parts[-1]

    def _clear(self, parent: int, name: str, rel: str) -> None:
        """Remove what is at ``name`` (a file or a link, never what a link points to)."""
        try:
            os.unlink(name, dir_fd=parent)
        except FileNotFoundError:
            pass
        except IsADirectoryError:
            raise TreeConflict(rel, "directory") from None

    def put_file(self, rel: str, src: Path) -> None:
        parent, name = self.parent(rel, create=True)
        try:
            self._clear(parent, name, rel)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
            fd = os.open(name, flags, 0o644, dir_fd=parent)
        finally:
            os.close(parent)
        with os.fdopen(fd, "wb") as out, src.open("rb") as fh:
            shutil.copyfileobj(fh, out, 1 << 20)

    def put_link(self, rel: str, target: str) -> None:
        parent, name = self.parent(rel, create=True)
        try:
            self._clear(parent, name, rel)
            os.symlink(target, name, dir_fd=parent)
        finally:
            os.close(parent)

    def make_dir(self, rel: str) -> None:
        os.close(open_dir(self.fd, split(rel), create=True))

    def make_parent(self, rel: str) -> None:
        parent, _ = self.parent(rel, create=True)
        os.close(parent)

    def finish(self, entry: Entry, epoch: int) -> None:
        """Mode, size, digest and time of a file, directory or link, never through a link."""
        parent, name = self.parent(entry.path, create=False)
        try:
            if entry.type == "l":
                os.utime(name, (epoch, epoch), dir_fd=parent, follow_symlinks=False)
                return
            flags = os.O_RDONLY | os.O_NOFOLLOW | (os.O_DIRECTORY if entry.type == "d" else 0)
            try:
                fd = os.open(name, flags, dir_fd=parent)
            except OSError as exc:
                if exc.errno in {errno.ELOOP, errno.ENOTDIR}:
                    raise conflict_at(parent, name, split(entry.path)[:-1]) from None
                raise
        finally:
            os.close(parent)
        try:
            if entry.type == "f" and not stat.S_ISREG(os.fstat(fd).st_mode):
                raise TreeConflict(entry.path.lstrip("/"), "directory")
            os.fchmod(fd, entry.mode)
            if entry.type == "f":
                entry.size = os.fstat(fd).st_size
                # A file others may not read (a key, chap-secrets) gets no digest: the manifest
                # and the SBOM are world-readable, and a digest of a password file is a password
                # for a dictionary attack.
                entry.sha256 = file_digest(fd) if entry.mode & 0o004 else ""
            os.utime(fd, (epoch, epoch))
        finally:
            os.close(fd)


def _made_by(entries: dict[str, Entry], link: str) -> str:
    entry = entries.get("/" + link)
    if entry is None or not entry.package:
        return ""
    return f" from {'the overlay' if entry.package == 'overlay' else entry.package}"


def _conflict(
    entries: dict[str, Entry], conflict: TreeConflict, what: str, fix: str
) -> ConfigError:
    return ConfigError(
        f"{what}: {conflict.describe()}{_made_by(entries, conflict.path)} in the rootfs, and the "
        f"build never writes through a link or over a directory; {fix}"
    )


def assemble(project: Project) -> list[Entry]:
    """Build the rootfs in a temporary directory, then swap it in; returns the manifest."""
    started = time.monotonic()
    rootfs = project.board.paths.rootfs
    guard = guard_for(project)
    # Refused by name before anything is touched (ROOTFS_DIR=/ included), then by ownership.
    check_target(rootfs, ROOTFS_SETTING, guard)
    check_target(project.board.paths.output, OUTPUT_SETTING, guard)
    claim(rootfs, ROOTFS_SETTING, guard)
    claim(project.board.paths.output, OUTPUT_SETTING, guard)
    project.rootfs_stamp.unlink(missing_ok=True)
    rootfs.parent.mkdir(parents=True, exist_ok=True)
    entries: dict[str, Entry] = {}
    with staged_tree(rootfs, setting=ROOTFS_SETTING, guard=guard, what="rootfs") as tmp:
        tree = _Tree(tmp)
        try:
            _put_packages(project, tree, entries)
            _put_overlay(project, tree, entries)
            if "/" + MARKER in entries:
                raise ConfigError(
                    f"/{MARKER} is the build's ownership marker and cannot be a file of the "
                    "image; rename it in the package or the overlay"
                )
            if project.board.permissions:
                for perm, where in parse_permission_lines(project.board.permissions):
                    _apply_permission(tree, entries, perm, where)
            _put_needed_devices(project, tree, entries)
            _add_directories(tmp, entries)
            _finish_entries(tree, entries)
            from fwbuild import sizes

            sizes.check_rootfs(project, entries.values())  # the flash budget, before any swap
        finally:
            tree.close()
    manifest = sorted(entries.values(), key=lambda e: e.path)
    write_manifest(project, manifest)
    write_outputs(project, manifest, guard)
    write_stamp(
        project.rootfs_stamp,
        project.rootfs_key,
        inputs=project.rootfs_inputs,
        seconds=round(time.monotonic() - started, 3),
    )
    return manifest


def _put_packages(project: Project, tree: _Tree, entries: dict[str, Entry]) -> None:
    """Every package's target files from its staging directory, executables stripped."""
    strip = project.toolchain.env()["STRIP"]
    executables: list[Path] = []  # stripped at the end, before the overlay may replace one
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
            src = staging / rel
            try:
                if src.is_symlink():
                    target = os.readlink(src)
                    tree.put_link(rel, target)
                    entries[path] = Entry(path, "l", 0o777, package=name, target=target)
                    continue
                tree.put_file(rel, src)
            except TreeConflict as c:
                raise _conflict(
                    entries,
                    c,
                    f"{pkg.recipe_file}: {path} (target_files of {name})",
                    "install it at the link's target instead, or drop the link",
                ) from None
            if mode & 0o111:
                executables.append(tree.root / rel)
            entries[path] = Entry(path, "f", mode, package=name)
    _strip(strip, executables)


def _put_overlay(project: Project, tree: _Tree, entries: dict[str, Entry]) -> None:
    """The board's overlay files and links, over the packages' (modes as on disk)."""
    overlay = project.board.overlay
    if not overlay or not overlay.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(overlay):
        dirnames.sort()
        links = [d for d in dirnames if (Path(dirpath) / d).is_symlink()]
        for fname in sorted([*filenames, *links]):
            src = Path(dirpath) / fname
            rel = src.relative_to(overlay).as_posix()
            try:
                if src.is_symlink():
                    target = os.readlink(src)
                    tree.put_link(rel, target)
                    entries["/" + rel] = Entry(
                        "/" + rel, "l", 0o777, package="overlay", target=target
                    )
                    continue
                tree.put_file(rel, src)
            except TreeConflict as c:
                raise _conflict(
                    entries,
                    c,
                    f"overlay file {src}",
                    "move it in the overlay to where the link points, or drop the link",
                ) from None
            mode = src.stat().st_mode & 0o7777
            entries["/" + rel] = Entry("/" + rel, "f", mode, package="overlay")


def _put_needed_devices(project: Project, tree: _Tree, entries: dict[str, Entry]) -> None:
    """The device nodes recipes say the image must provide, unless the table already has them."""
    for name, pkg in project.packages.items():
        for need in pkg.needs_devices:
            if need.path in entries:
                continue
            try:
                tree.make_parent(need.path)
            except TreeConflict as c:
                why = f", for {need.why}" if need.why else ""
                what = f"{pkg.recipe_file}: device {need.path} (needs_devices{why})"
                fix = "fix the link or the device's path"
                raise _conflict(entries, c, what, fix) from None
            entries[need.path] = Entry(need.path, need.kind, need.mode, package=name,
                                       major=need.major, minor=need.minor)  # fmt: skip


def _finish_entries(tree: _Tree, entries: dict[str, Entry]) -> None:
    """Modes, sizes, digests and SOURCE_DATE_EPOCH times of every file, directory and link."""
    epoch = source_date_epoch()
    for entry in entries.values():
        if entry.type in {"f", "d", "l"}:
            try:
                tree.finish(entry, epoch)
            except TreeConflict as c:
                who = entry.package or "a directory"
                fix = "fix the package, overlay or permissions line"
                raise _conflict(entries, c, f"{entry.path} ({who})", fix) from None


def write_outputs(project: Project, manifest: list[Entry], guard: Guard | None = None) -> None:
    """The output directory, replaced whole: images, kernel, manifest, sha256sums."""
    from fwbuild import images
    from fwbuild.sbom import write_sbom

    guard = guard or guard_for(project)
    out = project.board.paths.output
    # An image holding files only root may read (a private key, chap-secrets) is itself a
    # secret: the directory is private from its creation and the images are 0600.
    secret = any(e.type == "f" and not e.mode & 0o004 for e in manifest)
    rootfs = project.board.paths.rootfs
    epoch = source_date_epoch()
    mode = 0o700 if secret else 0o755
    what = "output directory"
    with staged_tree(out, setting=OUTPUT_SETTING, guard=guard, what=what, mode=mode) as tmp:
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
        from fwbuild import sizes

        sizes.check_images(project, manifest, tmp)  # the initramfs budget, before the swap
        shutil.copyfile(manifest_path(project), tmp / "manifest.json")
        names.append("manifest.json")
        names.append(write_sbom(project, tmp))  # describes the files above (fwbuild.sbom)
        images.write_sha256sums(tmp, names)


def _apply_permission(tree: _Tree, entries: dict[str, Entry], perm: Entry, where: str) -> None:
    if perm.type == "f":
        existing = entries.get(perm.path)
        if existing is not None and existing.type == "l":
            raise ConfigError(
                f"{where}: {perm.path} is listed as a file but is a symbolic link (to "
                f"{existing.target}){_made_by(entries, perm.path.lstrip('/'))} in the rootfs; "
                "name the file the link points to, or remove the line"
            )
        if existing is None or existing.type != "f":
            raise ConfigError(
                f"{where}: {perm.path} is listed as a file but no package or overlay installs "
                "it; fix the path or remove the line"
            )
        existing.mode, existing.uid, existing.gid = perm.mode, perm.uid, perm.gid
        return
    try:
        if perm.type == "d":
            tree.make_dir(perm.path)
        elif perm.type == "l":
            tree.put_link(perm.path, perm.target)
        else:
            tree.make_parent(perm.path)
    except TreeConflict as c:
        raise _conflict(
            entries,
            c,
            f"{where}: {perm.path}",
            "name the real directory in the permissions table (the link's target inside the "
            "rootfs), or remove the line",
        ) from None
    entries[perm.path] = perm


def _add_directories(tmp: Path, entries: dict[str, Entry]) -> None:
    for dirpath, dirnames, _ in os.walk(tmp):
        for d in dirnames:
            path = "/" + (Path(dirpath) / d).relative_to(tmp).as_posix()
            if path not in entries and not (Path(dirpath) / d).is_symlink():
                entries[path] = Entry(path, "d", 0o755)
