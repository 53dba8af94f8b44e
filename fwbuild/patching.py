"""Apply a series of unified diffs to a source tree, all or nothing.

patch_ng does the parsing (hunk ranges and bodies). Everything after that is done here, because
patch_ng's own apply() is unusable for a build: it matches a hunk only at its stated line, treats
fuzz=True as "accept any mismatch", does not handle ``diff -N`` creations, reports an
already-applied patch as success, writes file by file without rollback and chdir()s the process.

Its parser also needs help, so the file headers are re-read from the raw text in step with the
patch_ng result: it puts a "\\ No newline at end of file" that follows a hunk's last line into the
next file's header (and drops it after the last file); it turns every name dated at the epoch
into /dev/null whatever the hunk says; it silently rewrites "../" and absolute names into
harmless-looking relative ones; and it strips "a/" and "b/" only from patches it takes for git's,
which would make the strip level mean different things for different patches.

What this module does instead:

* Hunks are located like GNU patch with ``--fuzz=0``: first at the stated line (shifted by the
  offset the previous hunks of the file needed), then outward, nearest first, later lines before
  earlier ones on a tie; a hunk with less leading than trailing context can only match at the start
  of the file, one with less trailing context only at the end. Context must match exactly, byte
  for byte (CRLF and a missing final newline included).
* The whole series is computed in memory, so a later patch sees the result of an earlier one, and
  nothing in the tree changes unless every hunk of every patch applies.
* Files are then written through a temporary file in the same directory and ``os.replace``; if a
  write fails, what was already written is restored from memory.
* Target names are refused when they are absolute or contain ``..``. Symbolic links on the way
  are resolved one component at a time, on disk and as the series has left them (not with
  ``os.path.realpath``, which gives up past PATH_MAX): a symlinked directory is followed only
  while it stays inside the tree, and a file that is itself a link is never patched or written
  through, like GNU patch. The refusal names the patch and the path.
* A git patch's new symbolic link (``new file mode 120000``, the target as the content) becomes
  a symbolic link, as with GNU patch, but only when its target stays inside the tree: not
  absolute, not above the top, no ``..`` after a directory name (which could mean something
  else through a later link), and not through a link leading out. Changing or deleting a link
  is refused by name.
"""

from __future__ import annotations

import calendar
import contextlib
import gzip
import io
import os
import re
import secrets
import stat
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fwbuild.errors import PatchError
from fwbuild.fsutil import atomic_write

__all__ = ["PatchFile", "apply_series"]

_NEW_FILE_MODE = 0o644
_MAX_LINK_HOPS = 40  # like the kernel's limit on symbolic links followed in one lookup

_HUNK_RE = re.compile(rb"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
# Markers of content this module does not handle; a hunk line never starts with these words.
_BINARY_RE = re.compile(rb"^(?:GIT binary patch|Binary files .* differ|Files .* differ)\r?$", re.M)
_UNSUPPORTED_HEADERS = (
    (b"rename from ", "a rename"),
    (b"rename to ", "a rename"),
    (b"copy from ", "a copy"),
    (b"copy to ", "a copy"),
    (b"old mode ", "a file mode change"),
    (b"new mode ", "a file mode change"),
)
# git's extended headers that give a file's mode; 120000 is a symbolic link, whose content in
# the diff is its target.
_GIT_MODE_RE = re.compile(
    rb"^(?:new file mode|deleted file mode|index [0-9a-f]+\.\.[0-9a-f]+) (\d+)\r?$"
)
_SYMLINK_MODE = b"120000"
_ISO_TS_RE = re.compile(
    rb"(\d{4})-(\d\d)-(\d\d)[ T](\d\d):(\d\d):(\d\d)(?:\.\d+)?(?:\s*([+-])(\d\d):?(\d\d))?"
)
_CTIME_TS_RE = re.compile(
    rb"[A-Za-z]{3} ([A-Za-z]{3}) +(\d{1,2}) (\d\d):(\d\d):(\d\d) (\d{4})(?: ([+-])(\d\d)(\d\d))?"
)
_TRAILING_TS_RE = re.compile(
    rb"\s+(\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:\.\d+)?(?:\s*[+-]\d\d:?\d\d)?)\s*$"
)
_MONTHS = {m.encode(): i for i, m in enumerate(calendar.month_abbr) if m}
_C_ESCAPES = {
    ord("a"): 7,
    ord("b"): 8,
    ord("t"): 9,
    ord("n"): 10,
    ord("v"): 11,
    ord("f"): 12,
    ord("r"): 13,
    ord('"'): 34,
    ord("\\"): 92,
}

_ADVICE = "Refresh the patch against this version of the sources, or drop it from the series."


@dataclass(frozen=True)
class PatchFile:
    """One patch of a series: a unified diff, plain or gzip-compressed (name ends in .gz)."""

    path: Path
    strip: int = 1  # leading path components to remove from the names, like ``patch -pN``


# --------------------------------------------------------------------------------------------
# Parsed form


@dataclass
class _Hunk:
    number: int  # 1-based within its file section
    patch_line: int  # line of the "@@" header in the patch file
    old_start: int
    new_start: int
    old: list[bytes]  # lines with their line ends; the last may lack one
    new: list[bytes]
    prefix: int  # context lines before the first change
    suffix: int  # context lines after the last change


@dataclass
class _Section:
    """The changes to one file: a "---"/"+++" pair and its hunks."""

    patch_line: int
    old_name: bytes | None  # after stripping; None when /dev/null or not strippable
    new_name: bytes | None
    creates: bool
    deletes: bool
    hunks: list[_Hunk]
    display: str  # the name as written in the patch, for messages
    symlink: bool = False  # git mode 120000: the "content" is the target of a symbolic link


def _read_patch(pf: PatchFile, package: str) -> bytes:
    try:
        raw = pf.path.read_bytes()
    except OSError as exc:
        raise PatchError(
            f"cannot read patch {pf.path}: {exc.strerror or exc}. Check the patch list of the "
            "recipe and that the file exists.",
            package=package,
        ) from exc
    if pf.path.name.endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise PatchError(
                f"patch {pf.path} is named .gz but is not a valid gzip file ({exc}). Replace it "
                "with an intact copy or rename it if it is a plain diff.",
                package=package,
            ) from exc
    return raw


def _timestamp_is_epoch(ts: bytes) -> bool:
    """True when a diff header timestamp denotes the Unix epoch (``diff -N``'s absent file)."""
    m = _ISO_TS_RE.match(ts)
    if m:
        year, month, day, hh, mm, ss = (int(g) for g in m.groups()[:6])
        sign, tzh, tzm = m.group(7), m.group(8), m.group(9)
    else:
        m = _CTIME_TS_RE.match(ts)
        if not m or m.group(1) not in _MONTHS:
            return False
        month = _MONTHS[m.group(1)]
        day, hh, mm, ss, year = (int(g) for g in m.groups()[1:6])
        sign, tzh, tzm = m.group(7), m.group(8), m.group(9)
    if year not in (1969, 1970):
        return False
    try:
        seconds = calendar.timegm((year, month, day, hh, mm, ss, 0, 0, 0))
    except (ValueError, OverflowError):
        return False
    if sign is not None:
        offset = (int(tzh) * 60 + int(tzm)) * 60
        return seconds - (offset if sign == b"+" else -offset) == 0
    # No zone: the epoch in the local time of whoever ran diff, i.e. within a day of it.
    return abs(seconds) <= 14 * 3600 and seconds % 900 == 0


def _c_unquote(body: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(body):
        c = body[i]
        if c == 92 and i + 1 < len(body):  # backslash
            nxt = body[i + 1]
            if 48 <= nxt <= 55:  # octal escape, up to three digits
                j = i + 1
                while j < len(body) and j < i + 4 and 48 <= body[j] <= 55:
                    j += 1
                out.append(int(body[i + 1 : j], 8) & 0xFF)
                i = j
                continue
            out.append(_C_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(c)
        i += 1
    return bytes(out)


def _split_header(rest: bytes) -> tuple[bytes, bytes]:
    """Split what follows "--- "/"+++ " into the file name and the timestamp."""
    rest = rest.rstrip(b"\r\n")
    if b"\t" in rest:
        name, _, ts = rest.partition(b"\t")
    else:
        m = _TRAILING_TS_RE.search(rest)
        if m:
            name, ts = rest[: m.start()], m.group(1)
        else:
            name, ts = rest.rstrip(), b""
    name = name.strip(b" ")
    if len(name) >= 2 and name.startswith(b'"') and name.endswith(b'"'):
        name = _c_unquote(name[1:-1])
    return name, ts.strip()


def _strip_name(name: bytes, strip: int) -> bytes | None:
    """Remove ``strip`` leading components the way ``patch -pN`` does (runs of / count once)."""
    name = re.sub(rb"/+", b"/", name)
    if strip == 0:
        return name
    parts = name.split(b"/")
    if len(parts) <= strip:
        return None
    return b"/".join(parts[strip:])


def _hunk_from_ng(
    h: Any,
    number: int,
    patch_line: int,
    trailing_marker: bool,
    strip_cr: bool,
    pf: PatchFile,
    package: str,
) -> _Hunk:
    """Turn one patch_ng hunk into old/new line lists, honouring "\\ No newline" markers."""
    old: list[bytes] = []
    new: list[bytes] = []
    kinds: list[int] = []  # 0 context, 1 removed, 2 added
    last = -1
    for text in h.text:
        if strip_cr and text.endswith(b"\r\n"):
            text = text[:-2] + b"\n"
        c = text[:1]
        if c == b"\\":
            _drop_newline(old, new, last)
            continue
        body = text[1:]
        if not body.endswith(b"\n"):  # the patch file itself ends without a newline
            body += b"\n"
        if c == b" ":
            old.append(body)
            new.append(body)
            last = 0
        elif c == b"-":
            old.append(body)
            last = 1
        elif c == b"+":
            new.append(body)
            last = 2
        else:  # patch_ng accepted it, so this cannot happen; refuse rather than guess
            raise PatchError(
                f"patch {pf.path}: hunk #{number} at line {patch_line} has a line starting with "
                f"{c!r}, which is not part of a unified diff. Repair or regenerate the patch.",
                package=package,
            )
        kinds.append(last)
    if trailing_marker:
        _drop_newline(old, new, last)
    if len(old) != (h.linessrc or 0) or len(new) != (h.linestgt or 0):
        raise PatchError(
            f"patch {pf.path}: hunk #{number} at line {patch_line} does not have the number of "
            "lines its @@ header announces. Repair or regenerate the patch.",
            package=package,
        )
    prefix = 0
    while prefix < len(kinds) and kinds[prefix] == 0:
        prefix += 1
    suffix = 0
    while suffix < len(kinds) - prefix and kinds[len(kinds) - 1 - suffix] == 0:
        suffix += 1
    return _Hunk(number, patch_line, h.startsrc, h.starttgt, old, new, prefix, suffix)


def _drop_newline(old: list[bytes], new: list[bytes], last: int) -> None:
    if last in (0, 1) and old and old[-1].endswith(b"\n"):
        old[-1] = old[-1][:-1]
    if last in (0, 2) and new and new[-1].endswith(b"\n"):
        new[-1] = new[-1][:-1]


def _parse_patch(pf: PatchFile, package: str) -> list[_Section]:
    data = _read_patch(pf, package)
    items = _parsed_by_patch_ng(pf, package, data)
    scan = _Scan(pf, package, io.BytesIO(data).readlines())
    sections = [scan.section(item) for item in items]
    scan.finish()
    return sections


def _parsed_by_patch_ng(pf: PatchFile, package: str, data: bytes) -> list[Any]:
    """patch_ng's parse of the patch (its files and hunks); empty and binary diffs refused."""
    if not data.strip():
        raise PatchError(
            f"patch {pf.path} is empty. Put the diff in it or remove it from the series.",
            package=package,
        )
    if _BINARY_RE.search(data):
        raise PatchError(
            f"patch {pf.path} contains a binary diff, which is not supported. Ship the binary "
            "file as a separate source or express the change as a text diff.",
            package=package,
        )
    # imported on first use: patch_ng pulls in urllib.request and ssl, tens of milliseconds
    # that every no-op build whose recipes import this module would pay (issue 15)
    import patch_ng  # type: ignore[import-untyped]

    ps = patch_ng.fromstring(data)
    if not ps or not ps.items:
        raise PatchError(
            f"patch {pf.path} could not be parsed as a unified diff (patch_ng rejected it). "
            "Check that it is a 'diff -u' style patch and that no hunk has been truncated or "
            "edited by hand.",
            package=package,
        )
    return list(ps.items)


class _Scan:
    """The patch's lines, read once from the top alongside patch_ng's items: the headers between
    sections (git extended headers, refused when unsupported) and each section's hunks, checked
    against what patch_ng parsed."""

    def __init__(self, pf: PatchFile, package: str, lines: list[bytes]) -> None:
        self.pf, self.package, self.lines = pf, package, lines
        self.i = 0
        self.pending_git: int | None = None  # a "diff --git" header not yet at its ---/+++
        self.git_mode: bytes | None = None  # the mode its extended header gives (120000: link)

    def inconsistent(self, where: int) -> PatchError:
        return PatchError(
            f"patch {self.pf.path} is ambiguous around line {where + 1}: the diff headers and "
            "hunks cannot be matched up reliably. Regenerate the patch with 'diff -u'.",
            package=self.package,
        )

    def metadata_only(self, idx: int) -> PatchError:
        return PatchError(
            f"patch {self.pf.path} line {idx + 1} is a git diff without content "
            f"('{self.lines[idx].decode(errors='replace').strip()}': an empty file or a "
            "mode-only change), which is not supported. Drop it from the patch or give the file "
            "content.",
            package=self.package,
        )

    def header_line(self, idx: int) -> None:
        line = self.lines[idx]
        for prefix, what in _UNSUPPORTED_HEADERS:
            if line.startswith(prefix):
                raise PatchError(
                    f"patch {self.pf.path} line {idx + 1} describes {what} (git extended header "
                    f"'{line.decode(errors='replace').strip()}'), which is not supported. "
                    "Rewrite that part as a plain content diff.",
                    package=self.package,
                )
        if line.startswith(b"diff --git "):
            if self.pending_git is not None:
                raise self.metadata_only(self.pending_git)
            self.pending_git = idx
            self.git_mode = None
        elif self.pending_git is not None:
            m = _GIT_MODE_RE.match(line)
            if m:
                self.git_mode = m.group(1)

    def section(self, item: Any) -> _Section:
        """The next file's section: its ---/+++ headers and the hunks patch_ng found in it."""
        lines, n = self.lines, len(self.lines)
        while True:
            if self.i + 1 >= n:
                raise self.inconsistent(min(self.i, n - 1))
            if lines[self.i].startswith(b"--- ") and lines[self.i + 1].startswith(b"+++ "):
                break
            self.header_line(self.i)
            self.i += 1
        self.pending_git = None
        symlink = self.git_mode == _SYMLINK_MODE
        self.git_mode = None
        start = i = self.i
        # A section whose headers end in CRLF went through a DOS conversion: like GNU patch
        # ("Stripping trailing CRs from patch"), drop the CR from each of its lines.
        strip_cr = lines[i].endswith(b"\r\n") and lines[i + 1].endswith(b"\r\n")
        old_raw, old_ts = _split_header(lines[i][4:])
        new_raw, new_ts = _split_header(lines[i + 1][4:])
        i += 2
        hunks: list[_Hunk] = []
        for number, h in enumerate(item.hunks, 1):
            m = _HUNK_RE.match(lines[i]) if i < n else None
            if m is None or int(m.group(1)) != h.startsrc or int(m.group(3)) != h.starttgt:
                raise self.inconsistent(min(i, n - 1))
            at = i + 1
            i += 1 + len(h.text)
            if i > n:
                raise self.inconsistent(n - 1)
            marker = False
            while i < n and lines[i].startswith(b"\\"):
                marker = True
                i += 1
            hunks.append(_hunk_from_ng(h, number, at, marker, strip_cr, self.pf, self.package))
        if not hunks:
            raise self.inconsistent(start)
        self.i = i
        return _make_section(
            self.pf, self.package, start + 1, old_raw, old_ts, new_raw, new_ts, hunks, symlink
        )

    def finish(self) -> None:
        """The lines after the last section: headers only, none of them a file left empty."""
        while self.i < len(self.lines):
            self.header_line(self.i)
            self.i += 1
        if self.pending_git is not None:
            raise self.metadata_only(self.pending_git)


def _make_section(
    pf: PatchFile,
    package: str,
    patch_line: int,
    old_raw: bytes,
    old_ts: bytes,
    new_raw: bytes,
    new_ts: bytes,
    hunks: list[_Hunk],
    symlink: bool = False,
) -> _Section:
    old_null = old_raw == b"/dev/null"
    new_null = new_raw == b"/dev/null"
    display = os.fsdecode(new_raw if not new_null else old_raw)
    single_empty_old = len(hunks) == 1 and not hunks[0].old
    single_empty_new = len(hunks) == 1 and not hunks[0].new
    if old_null and new_null:
        raise PatchError(
            f"patch {pf.path} line {patch_line}: both file names are /dev/null. Repair or "
            "regenerate the patch.",
            package=package,
        )
    if (old_null and not single_empty_old) or (new_null and not single_empty_new):
        raise PatchError(
            f"patch {pf.path} line {patch_line}: the section for {display} names /dev/null but "
            "its hunks do not create or delete the whole file. Repair or regenerate the patch.",
            package=package,
        )
    creates = old_null or (single_empty_old and _timestamp_is_epoch(old_ts))
    deletes = new_null or (single_empty_new and _timestamp_is_epoch(new_ts))
    if creates and deletes:  # an empty hunk on both sides cannot be parsed; be safe anyway
        raise PatchError(
            f"patch {pf.path} line {patch_line}: the section for {display} both creates and "
            "deletes the file. Repair or regenerate the patch.",
            package=package,
        )
    old_name = None if old_null else _strip_name(old_raw, pf.strip)
    new_name = None if new_null else _strip_name(new_raw, pf.strip)
    for name in (old_name, new_name):
        if name is not None:
            _check_name(pf, package, patch_line, name)
    return _Section(patch_line, old_name, new_name, creates, deletes, hunks, display, symlink)


def _check_name(pf: PatchFile, package: str, patch_line: int, name: bytes) -> None:
    text = os.fsdecode(name)
    if name.startswith(b"/"):
        raise PatchError(
            f"patch {pf.path} line {patch_line} names the absolute path {text} (after stripping "
            f"{pf.strip} component(s)); refusing to write outside the source tree. Fix the file "
            "names in the patch or its strip level.",
            package=package,
        )
    if b".." in name.split(b"/"):
        raise PatchError(
            f"patch {pf.path} line {patch_line} names {text}, which contains '..'; refusing to "
            "write outside the source tree. Fix the file names in the patch or its strip level.",
            package=package,
        )


# --------------------------------------------------------------------------------------------
# Locating and applying hunks (GNU patch's locate_hunk with fuzz 0)


def _locate(
    lines: list[bytes],
    pattern: list[bytes],
    pch_first: int,
    first_guess: int,
    prefix: int,
    suffix: int,
    last_frozen: int,
) -> int:
    """1-based line where ``pattern`` matches, or 0. Mirrors GNU patch's locate_hunk(fuzz=0)."""
    pat = len(pattern)
    n = len(lines)
    if pat == 0:  # a pure insertion matches anywhere; only its position must be sane
        # (GNU patch appends one beyond the end of the file at the end, and refuses one that
        # would land inside the previous hunk: "misordered hunks".)
        return first_guess if first_guess > last_frozen else 0
    context = max(prefix, suffix)
    max_where = n - pat + 1 - (context - suffix)
    min_where = last_frozen + 1

    def matches(where: int) -> bool:
        return lines[where - 1 : where - 1 + pat] == pattern

    if prefix < context and pch_first <= 1:
        # Less leading than trailing context at line 1: the hunk is anchored to the file start.
        return 1 if last_frozen <= prefix and max_where >= 1 and matches(1) else 0
    if suffix < context:
        # Less trailing than leading context: the hunk is anchored to the end of the file.
        where = n - pat + 1
        return where if where >= max(min_where, 1) and matches(where) else 0
    low = max(min_where, 1)
    high = max_where
    if low > high:
        return 0
    # Candidates are the lines in [low, high] holding the first pattern line, tried nearest to
    # first_guess first and, at equal distance, the later one first (GNU's +offset before -offset).
    first = pattern[0]
    if low <= first_guess <= high and lines[first_guess - 1] == first and matches(first_guess):
        return first_guess
    candidates: list[int] = []
    idx = low - 1
    end = high  # exclusive 0-based bound == inclusive 1-based high
    index = lines.index
    while True:
        try:
            idx = index(first, idx, end)
        except ValueError:
            break
        candidates.append(idx + 1)
        idx += 1
    candidates.sort(key=lambda w: (abs(w - first_guess), w < first_guess))
    for where in candidates:
        if matches(where):
            return where
    return 0


@dataclass
class _Outcome:
    lines: list[bytes] | None = None
    failed: _Hunk | None = None
    at_line: int = 0


def _apply_hunks(lines: list[bytes], hunks: list[_Hunk], reverse: bool = False) -> _Outcome:
    out: list[bytes] = []
    cursor = 0  # input lines consumed (GNU's last_frozen_line)
    in_offset = 0
    for h in hunks:
        old, new = (h.new, h.old) if reverse else (h.old, h.new)
        start = h.new_start if reverse else h.old_start
        pch_first = start if old else start + 1  # "-5,0" means: insert after line 5
        first_guess = pch_first + in_offset
        where = _locate(lines, old, pch_first, first_guess, h.prefix, h.suffix, cursor)
        if not where:
            return _Outcome(failed=h, at_line=first_guess)
        in_offset += where - first_guess
        change_from = where - 1 + h.prefix
        _extend(out, lines[cursor:change_from])
        _extend(out, new[h.prefix : len(new) - h.suffix])
        cursor = where - 1 + len(old) - h.suffix
    _extend(out, lines[cursor:])
    return _Outcome(lines=out)


def _extend(out: list[bytes], chunk: list[bytes]) -> None:
    """Append lines; like GNU patch, a line written without a newline gets one when more follow.

    (A hunk may end in "\\ No newline at end of file" yet land above other lines, e.g. after an
    offset; only the last line of a file can lack its newline.)
    """
    if chunk and out and not out[-1].endswith(b"\n"):
        out[-1] += b"\n"
    out.extend(chunk)


# --------------------------------------------------------------------------------------------
# The in-memory tree


@dataclass
class _File:
    rel: str  # canonical path relative to the tree (symlinked directories resolved)
    path: Path  # absolute path on disk
    orig: bytes | None  # content before the series; None when the file did not exist
    mode: int  # permission bits before the series
    lines: list[bytes] | None  # current content; None while the file does not exist
    recreated: bool = False  # deleted and created again by the series: gets a new file's mode
    link: bytes | None = None  # the series made it a symbolic link to this target


class _Tree:
    def __init__(self, root: Path, package: str) -> None:
        self.package = package
        try:
            self.root = Path(os.path.realpath(root))
            st = os.stat(self.root)
        except OSError as exc:
            raise PatchError(
                f"cannot patch {root}: {exc.strerror or exc}. The source tree must be unpacked "
                "before its patches are applied.",
                package=package,
            ) from exc
        if not stat.S_ISDIR(st.st_mode):
            raise PatchError(
                f"cannot patch {root}: it is not a directory. The source tree must be unpacked "
                "before its patches are applied.",
                package=package,
            )
        self.files: dict[str, _File] = {}
        self._resolved: dict[bytes, str] = {}

    def resolve(self, name: bytes, pf: PatchFile, section: _Section) -> str:
        """Canonical relative path for a stripped name; refuse anything leaving the tree.

        Symbolic links on the way (on disk, or made earlier in the series) are resolved one
        component at a time, the way the kernel would, instead of with os.path.realpath, which
        gives up past PATH_MAX: a directory link is followed only while it stays inside the tree,
        and the named file itself must not be a link.
        """
        rel = self._resolved.get(name)
        if rel is not None:
            return rel
        parts = [p for p in os.fsdecode(name).split("/") if p not in ("", ".")]
        shown = "/".join(parts) or os.fsdecode(name)
        where = f"patch {pf.path} line {section.patch_line}"
        if not parts:
            raise PatchError(
                f"{where} names '{shown}', which is not a file in the tree. Fix the file names "
                "in the patch or its strip level.",
                package=self.package,
            )
        self._walk(parts, where, shown, follow_last=True)  # a link out is refused as such
        canonical = self._walk(parts, where, shown, follow_last=False)
        if not canonical:
            raise PatchError(
                f"{where} targets {shown}, which resolves to the top of the source tree, not a "
                "file. Fix the file names in the patch.",
                package=self.package,
            )
        if self._link_at(canonical, where) is not None:
            raise PatchError(
                f"{where} targets {shown}, which is a symbolic link; refusing to patch it (GNU "
                "patch refuses too) or to write through it. Patch the file it points to instead.",
                package=self.package,
            )
        rel = "/".join(canonical)
        self._resolved[name] = rel
        return rel

    def _walk(self, parts: list[str], where: str, shown: str, *, follow_last: bool) -> list[str]:
        """Resolve ``parts`` (relative to the root) through symbolic links, component by
        component; the result names no link except, without ``follow_last``, its last part.
        Raises PatchError when a link or '..' leads out of the tree."""
        done: list[str] = []
        todo = list(parts)
        hops = 0
        via = "'..'"  # the last link followed, for the message
        while todo:
            part = todo.pop(0)
            if part in ("", "."):
                continue
            if part == "..":
                if not done:
                    raise self._outside(where, shown, via)
                done.pop()
                continue
            target = self._link_at([*done, part], where)
            if target is None or (not todo and not follow_last):
                done.append(part)
                continue
            hops += 1
            link = "/".join([*done, part])
            if hops > _MAX_LINK_HOPS:
                raise PatchError(
                    f"{where} targets {shown}, whose symbolic links ({link} and others) loop or "
                    f"chain more than {_MAX_LINK_HOPS} times. Fix the links in the tree.",
                    package=self.package,
                )
            via = f"{link} -> {target}"
            if target.startswith("/"):
                raise self._outside(where, shown, via)
            todo = target.split("/") + todo
        return done

    def _outside(self, where: str, shown: str, how: str) -> PatchError:
        return PatchError(
            f"{where} targets {shown}, which resolves through a symbolic link ({how}) to a place "
            f"outside the source tree {self.root}; refusing to write there. Remove the symlink "
            "from the tree or fix the patch.",
            package=self.package,
        )

    def _link_at(self, parts: list[str], where: str) -> str | None:
        """The target of the symbolic link at ``parts`` as the series has left it, or None."""
        f = self.files.get("/".join(parts))
        if f is not None:  # seen by the series: a regular file, a link it made, or nothing
            return None if f.link is None else os.fsdecode(f.link)
        path = self.root.joinpath(*parts)
        try:
            st = os.lstat(path)
            return os.readlink(path) if stat.S_ISLNK(st.st_mode) else None
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            shown = "/".join(parts)
            if len(shown) > 200:  # a chain of links past PATH_MAX: keep the message readable
                shown = f"{shown[:80]}...{shown[-80:]}"
            raise PatchError(
                f"{where}: cannot look at {shown} in {self.root}: {exc.strerror or exc}; "
                "refusing to write there. Check the source tree and its symbolic links.",
                package=self.package,
            ) from exc

    def get(self, rel: str, pf: PatchFile, section: _Section) -> _File:
        f = self.files.get(rel)
        if f is not None:
            return f
        path = self.root / rel
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            f = _File(rel, path, None, _NEW_FILE_MODE, None)
        except OSError as exc:
            raise self._io_error(pf, section, rel, exc) from exc
        else:
            if not stat.S_ISREG(st.st_mode):
                raise PatchError(
                    f"patch {pf.path} line {section.patch_line} targets {rel}, which is not a "
                    "regular file; refusing to patch it. Fix the patch or the tree.",
                    package=self.package,
                )
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise self._io_error(pf, section, rel, exc) from exc
            f = _File(rel, path, data, stat.S_IMODE(st.st_mode), io.BytesIO(data).readlines())
        self.files[rel] = f
        return f

    def exists(self, name: bytes | None, pf: PatchFile, section: _Section) -> bool:
        if name is None:
            return False
        f = self.get(self.resolve(name, pf, section), pf, section)
        return f.lines is not None or f.link is not None

    def check_link(self, rel: str, target: bytes, where: str) -> None:
        """Refuse a symbolic link at ``rel`` (canonical) to ``target`` that could lead out of the
        tree, now or after a later link of the series: like the unpacker, a target may only go
        up ('..') first, not beyond the top, then down, and what it reaches must be inside."""
        text = os.fsdecode(target)
        shown = f"{rel} -> {text}"
        if not text or "\n" in text or "\0" in text:
            raise PatchError(
                f"{where} makes {rel} a symbolic link to {text!r}, which is not a valid link "
                "target (empty, or several lines). Repair or regenerate the patch.",
                package=self.package,
            )
        if text.startswith("/"):
            raise PatchError(
                f"{where} makes {rel} a symbolic link to the absolute path {text}, outside the "
                "source tree; refusing to create it. Make the link relative and inside the tree.",
                package=self.package,
            )
        parts = [p for p in text.split("/") if p not in ("", ".")]
        ups = 0
        while ups < len(parts) and parts[ups] == "..":
            ups += 1
        base = rel.split("/")[:-1]
        if ups > len(base):
            raise PatchError(
                f"{where} makes {rel} a symbolic link to {text}, which points outside the source "
                "tree; refusing to create it. Make the link point inside the tree.",
                package=self.package,
            )
        if ".." in parts[ups:]:
            raise PatchError(
                f"{where} makes {rel} a symbolic link to {text}, which goes up ('..') after "
                "going down into a directory: if that directory is or becomes a symbolic link, "
                "'..' leads elsewhere than the name suggests, possibly outside the tree, so such "
                "links are refused. Write the target as a plain path ('../dir/file').",
                package=self.package,
            )
        self._walk(base + parts, where, shown, follow_last=True)
        inside = rel + "/"
        for other, f in self.files.items():
            if other.startswith(inside) and (f.lines is not None or f.link is not None):
                raise PatchError(
                    f"{where} makes {rel} a symbolic link, but the series has put {other} in a "
                    "directory of that name. Fix the order or the names in the patches.",
                    package=self.package,
                )

    def _io_error(self, pf: PatchFile, section: _Section, rel: str, exc: OSError) -> PatchError:
        return PatchError(
            f"patch {pf.path} line {section.patch_line}: cannot read {rel}: "
            f"{exc.strerror or exc}. Check the permissions of the source tree.",
            package=self.package,
        )


def _apply_section(tree: _Tree, pf: PatchFile, s: _Section) -> str:
    pkg = tree.package
    # Like GNU patch -pN in the common cases: a creation uses the new name, a deletion the old
    # one; otherwise the new name if that file exists, else the old name if that one does.
    if s.creates:
        name = s.new_name
    elif s.deletes:
        name = s.old_name
    else:
        names = [x for x in (s.new_name, s.old_name) if x is not None]
        name = next((x for x in names if tree.exists(x, pf, s)), names[0] if names else None)
    if name is None:
        raise PatchError(
            f"patch {pf.path} line {s.patch_line}: the name {s.display} has fewer than "
            f"{pf.strip + 1} path components, so stripping {pf.strip} leaves no file name. Use "
            "the right strip level for this patch.",
            package=pkg,
        )
    where = f"patch {pf.path} line {s.patch_line}"
    if s.symlink and not s.creates:
        raise PatchError(
            f"{where} {'deletes' if s.deletes else 'changes'} the symbolic link "
            f"{os.fsdecode(name)} "
            "(git mode 120000), which is not supported; only new links can be made. Do it in "
            "the recipe's post_patch step, or drop it from the patch.",
            package=pkg,
        )
    rel = tree.resolve(name, pf, s)
    f = tree.get(rel, pf, s)
    if f.link is not None and not s.creates:
        raise PatchError(
            f"{where} {'deletes' if s.deletes else 'modifies'} {rel}, which an earlier patch of "
            "the series made a symbolic link; refusing to patch it or to write through it. "
            "Patch the file it points to instead.",
            package=pkg,
        )
    if s.creates:
        content = s.hunks[0].new
        if f.lines is not None or f.link is not None:
            already = f.lines == content or f.link == b"".join(content)
            raise PatchError(
                f"{where} creates {rel}, which already exists"
                + (
                    " with exactly that content: the patch has already been applied. "
                    if already
                    else ". "
                )
                + "Start from a freshly unpacked tree or drop the patch from the series.",
                package=pkg,
            )
        if f.orig is not None:
            f.recreated = True
        if s.symlink:  # git's "new file mode 120000": the content is the link's target
            tree.check_link(rel, b"".join(content), where)
            f.link = b"".join(content)
            return rel
        f.lines = list(content)
        return rel
    if f.lines is None:
        raise PatchError(
            f"{where} {'deletes' if s.deletes else 'modifies'} {rel}, which does not exist in "
            f"the tree{' (the patch may already have been applied)' if s.deletes else ''}. "
            "Check the strip level of the patch and that it belongs to this version of the "
            "sources.",
            package=pkg,
        )
    if s.deletes:
        if f.lines != s.hunks[0].old:
            raise PatchError(
                f"{where} deletes {rel}, but the file does not have the content the patch "
                f"removes (hunk #1 at patch line {s.hunks[0].patch_line}); not deleting it. "
                + _ADVICE,
                package=pkg,
            )
        f.lines = None
        return rel
    result = _apply_hunks(f.lines, s.hunks)
    if result.lines is not None:
        f.lines = result.lines
        return rel
    if _apply_hunks(f.lines, s.hunks, reverse=True).lines is not None:
        raise PatchError(
            f"{where}: the changes to {rel} are already applied (every hunk matches reversed, "
            "none forward). Start from a freshly unpacked tree or drop the patch from the series.",
            package=pkg,
        )
    h = result.failed
    assert h is not None
    raise PatchError(
        f"{where}: hunk #{h.number} for {rel} (patch line {h.patch_line}, expected at line "
        f"{result.at_line} of the file) does not apply: its {len(h.old)} line(s) of context and "
        "removed text match nowhere in the file exactly (fuzz is not allowed). " + _ADVICE,
        package=pkg,
    )


# --------------------------------------------------------------------------------------------
# Writing, with rollback


def _make_parents(root: Path, path: Path) -> Iterator[Path]:
    """Make the missing directories above ``path``, yielding each as soon as it exists (so the
    journal has it even if the next mkdir fails). Every one is a real directory, not a link:
    names were resolved through links before."""
    missing: list[Path] = []
    parent = path.parent
    while parent != root and not os.path.lexists(parent):
        missing.append(parent)
        parent = parent.parent
    for d in reversed(missing):
        os.mkdir(d)
        yield d


def _atomic_symlink(path: Path, target: bytes) -> None:
    """Make ``path`` a symbolic link to ``target``: made under a temporary name, then renamed
    over the path (which replaces a regular file, never writes through a link)."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.fwpatch")
        try:
            os.symlink(os.fsdecode(target), tmp)
            break
        except FileExistsError:
            continue
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _commit(root: Path, files: list[_File], package: str) -> None:
    journal: list[tuple[str, Any]] = []
    try:
        for f in files:
            if f.link is not None:
                for d in _make_parents(root, f.path):
                    journal.append(("mkdir", d))
                _atomic_symlink(f.path, f.link)
                journal.append(("write", f))
                continue
            data = None if f.lines is None else b"".join(f.lines)
            if data == f.orig and not (f.recreated and data is not None):
                continue
            if data is None:
                os.unlink(f.path)
                journal.append(("unlink", f))
                parent = f.path.parent
                while parent != root:  # like GNU patch: drop directories left empty
                    try:
                        os.rmdir(parent)
                    except OSError:
                        break
                    journal.append(("rmdir", parent))
                    parent = parent.parent
                continue
            if f.orig is None:
                for d in _make_parents(root, f.path):
                    journal.append(("mkdir", d))
            mode = _NEW_FILE_MODE if f.orig is None or f.recreated else f.mode
            atomic_write(f.path, data, mode)
            journal.append(("write", f))
    except BaseException as exc:
        problems = _rollback(journal)
        if not isinstance(exc, OSError):  # e.g. KeyboardInterrupt: restored, then re-raised
            raise
        state = (
            "The files already written were restored, so the tree is as before."
            if not problems
            else "Restoring the tree also failed for: " + "; ".join(problems) + ". Unpack the "
            "sources again before retrying."
        )
        raise PatchError(
            f"writing the patched files failed at {exc.filename or '?'}: "
            f"{exc.strerror or exc}. {state} Check free space and permissions of the tree.",
            package=package,
        ) from exc


def _rollback(journal: list[tuple[str, Any]]) -> list[str]:
    problems: list[str] = []
    for action, obj in reversed(journal):
        try:
            if action == "mkdir":
                os.rmdir(obj)
            elif action == "rmdir":
                os.mkdir(obj)
            elif obj.orig is None:
                os.unlink(obj.path)
            else:
                atomic_write(obj.path, obj.orig, obj.mode)
        except OSError as exc:
            problems.append(f"{getattr(obj, 'path', obj)} ({exc.strerror or exc})")
    return problems


# --------------------------------------------------------------------------------------------


def apply_series(tree: Path, patches: Sequence[PatchFile], *, package: str) -> list[Path]:
    """Apply the patches in order to the tree, all or nothing. Returns the relative paths touched.

    Every patch is parsed and every hunk located before anything is written; a later patch sees
    the result of the earlier ones. Raises PatchError (tree unchanged) when a patch cannot be
    parsed, a hunk does not match exactly, a patch is already applied, a file to create exists,
    a name is absolute, contains '..' or leads out of the tree through a symlink, a patched file
    is a symlink, or a new symlink would point outside the tree.
    """
    state = _Tree(Path(tree), package)
    touched: dict[str, None] = {}
    for pf in patches:
        if pf.strip < 0:
            raise PatchError(
                f"patch {pf.path} has a negative strip level ({pf.strip}). Use 0 or more.",
                package=package,
            )
        for section in _parse_patch(pf, package):
            touched.setdefault(_apply_section(state, pf, section), None)
    _commit(state.root, [state.files[rel] for rel in touched], package)
    return [Path(rel) for rel in touched]
