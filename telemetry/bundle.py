"""The reproduction bundle: one file holding a cycle's spans, its starting state and what rebuilds its agent.

A bundle (`*.cogscope`) is a zip archive of exactly these members:

- `manifest.json`: the format's name and version, the trace id, the agent reference, its options, the model per role,
  the MCP commands, the prices the cycle's models were priced at, the starting state's id, and the size and SHA-256
  of each other member;
- `spans.json`: the cycle's spans in Phoenix's own span shape (`telemetry.span_transfer`);
- `state.sqlite`, when the cycle names a starting state: that state as a store file of its own.

Reading a bundle is reading untrusted input (a file from a bug report, an upload). `read_bundle` refuses, with one
line and nothing written outside the scratch folder it is given: a file that is not a zip archive (foreign, truncated
or damaged), a member that is not one of the three (a path such as `../x` included), a member named twice, more
unpacked bytes than allowed (a zip bomb), a manifest of another format or of a newer version, a member whose size or
SHA-256 is not the manifest's, and spans that are not the spans of the manifest's trace.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import secrets
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from .errors import TelemetryError
from .phoenix_spans import TRACE_ID

FORMAT = "cogscope-bundle"
VERSION = 1  # bumped when a reader of an older version would misread a bundle
BUNDLE_SUFFIX = ".cogscope"
MANIFEST, SPANS, STATE = "manifest.json", "spans.json", "state.sqlite"
MEMBERS = (MANIFEST, SPANS, STATE)
MANIFEST_MAX_BYTES = 1 << 20
MAX_RATIO = 200  # unpacked / packed bytes of a member beyond which it is a zip bomb (a store packs ~5:1, spans ~20:1)
SPAN_ID = re.compile(r"^[0-9a-f]{16}$")
STATE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")  # what a state id may look like (it names a file)
_CHUNK = 1 << 16


class BundleError(TelemetryError):
    """A bundle that cannot be read or written; the message names the file, what is wrong and what to do."""


@dataclass(frozen=True)
class Manifest:
    """What a bundle says about its cycle (`manifest.json`)."""

    trace_id: str
    agent: str | None  # registry name or import path; None: another app's cycle (replay names its factory)
    options: dict[str, Any]
    models: dict[str, str]  # role -> model id
    mcp: list[str]
    task: str
    status: str | None
    state: str | None  # the starting state's id; None: the cycle names none (no state.sqlite)
    prices: dict[str, list[float | None]]  # model id -> [input, output] USD per million tokens (None: unknown)
    project: str  # the Phoenix project it was exported from
    spans: int
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    exported_by: str = ""  # the cogscope version that wrote it
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # member -> {"bytes": n, "sha256": hex}

    def document(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "note": "A cogscope reproduction bundle: `cogscope import FILE` loads it into the local Phoenix.",
            "trace_id": self.trace_id,
            "agent": self.agent,
            "options": self.options,
            "models": self.models,
            "mcp": self.mcp,
            "task": self.task,
            "status": self.status,
            "state": self.state,
            "prices": self.prices,
            "project": self.project,
            "spans": self.spans,
            "created": self.created,
            "exported_by": self.exported_by,
            "files": self.files,
        }

    @classmethod
    def parse(cls, data: Any, where: str) -> Manifest:
        """The manifest of a bundle's `manifest.json` (BundleError for one of another format, a newer version, or
        fields of the wrong kind)."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise BundleError(f"{where} is not a cogscope bundle (its manifest names no {FORMAT!r} format)")
        version = data.get("version")
        if not isinstance(version, int) or version < 1:
            raise BundleError(f"{where} is damaged: its manifest has no valid format version; export it again")
        if version > VERSION:
            raise BundleError(
                f"{where} is a bundle of format version {version}, newer than this cogscope reads ({VERSION}); "
                "upgrade cogscope to import it"
            )
        try:
            return cls(
                trace_id=_text(data, "trace_id", pattern=TRACE_ID),
                agent=_text(data, "agent", optional=True),
                options=_of(data, "options", dict),
                models={str(k): str(v) for k, v in _of(data, "models", dict).items()},
                mcp=[str(c) for c in _of(data, "mcp", list)],
                task=_text(data, "task"),
                status=_text(data, "status", optional=True),
                state=_text(data, "state", optional=True, pattern=STATE_ID),
                prices=_prices(_of(data, "prices", dict)),
                project=_text(data, "project"),
                spans=_count(data.get("spans")),
                created=_text(data, "created"),
                exported_by=_text(data, "exported_by"),
                files=_files(_of(data, "files", dict)),
            )
        except (TypeError, ValueError) as e:
            raise BundleError(f"{where} is damaged: its manifest {e}; export it again") from None


def _of(data: Mapping[str, Any], key: str, kind: type) -> Any:
    value = data.get(key)
    if not isinstance(value, kind):
        raise TypeError(f"has no {key!r} {kind.__name__}")
    return value


def _text(data: Mapping[str, Any], key: str, *, optional: bool = False, pattern: re.Pattern[str] | None = None) -> Any:
    value = data.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or (pattern is not None and not pattern.match(value)):
        raise ValueError(f"has no valid {key!r}")
    return value


def _count(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError("has no valid span count")
    return value


def _prices(data: Mapping[str, Any]) -> dict[str, list[float | None]]:
    out: dict[str, list[float | None]] = {}
    for model, pair in data.items():
        if not isinstance(pair, list) or len(pair) != 2:
            raise ValueError(f"has prices of {model!r} that are not [input, output]")
        out[str(model)] = [None if p is None else float(p) for p in pair]
    return out


def _files(data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, entry in data.items():
        if name not in (SPANS, STATE) or not isinstance(entry, dict):
            raise ValueError(f"lists a member {str(name)[:60]!r} a bundle does not have")
        size, digest = entry.get("bytes"), entry.get("sha256")
        if not isinstance(size, int) or size < 0 or not isinstance(digest, str) or len(digest) != 64:
            raise ValueError(f"has no valid size and checksum for {name}")
        out[name] = {"bytes": size, "sha256": digest}
    if SPANS not in out:
        raise ValueError(f"lists no {SPANS}")
    return out


def bundle_prices_entry(per_million: tuple[float, float]) -> list[float | None]:
    """A model's (input, output) USD per million tokens as the manifest writes them: unknown (nan) as None."""
    return [None if math.isnan(p) else p for p in per_million]


# -- writing -------------------------------------------------------------------------------------------------------
def write_bundle(path: Path, manifest: Manifest, spans: list[dict[str, Any]], state_file: Path | None) -> Path:
    """Write the bundle at `path` (whole or not at all: a partial file next to it, renamed when complete); the
    manifest's `files` are filled in here. BundleError when the file cannot be written."""
    if (state_file is None) != (manifest.state is None):
        raise ValueError("a bundle holds a state file exactly when its manifest names a state")
    body = json.dumps(spans, ensure_ascii=False, separators=(",", ":")).encode()
    files = {SPANS: {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}}
    if state_file is not None:
        files[STATE] = {"bytes": state_file.stat().st_size, "sha256": file_sha256(state_file)}
    document = replace(manifest, files=files).document()
    part = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
    try:
        with zipfile.ZipFile(part, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(MANIFEST, json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False))
            archive.writestr(SPANS, body)
            if state_file is not None:
                archive.write(state_file, STATE)
        os.replace(part, path)
    except OSError as e:
        part.unlink(missing_ok=True)
        raise BundleError(
            f"cannot write the bundle {path}: {e.strerror or e}; choose a writable place with -o"
        ) from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


# -- reading -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Bundle:
    """A bundle read and checked: its manifest, its spans, and its state unpacked into the scratch folder."""

    manifest: Manifest
    spans: list[dict[str, Any]]
    state_file: Path | None


def read_bundle(path: Path, scratch: Path, *, max_bytes: int, max_unpacked: int, name: str | None = None) -> Bundle:
    """Read and check the bundle at `path`, unpacking its state into `scratch` (a folder the caller removes).
    BundleError, with one line naming the file (`name`, default its path), for anything but a whole bundle of a
    format this cogscope reads."""
    where = name or str(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise BundleError(f"cannot read {where}: {e.strerror or e}; give the path of a .cogscope file") from None
    if size > max_bytes:
        raise BundleError(
            f"{where} is {size / 1e6:,.1f} MB, more than a bundle may be ({max_bytes / 1e6:,.0f} MB); nothing imported"
        )
    damaged = f"{where} is not a cogscope bundle, or it is truncated or damaged"
    try:
        with zipfile.ZipFile(path) as archive:
            members = _members(archive, where, max_unpacked)
            manifest = Manifest.parse(_json(archive, members[MANIFEST], MANIFEST_MAX_BYTES, where), where)
            _check_listed(manifest, members, where)
            spans = _json(archive, members[SPANS], max_unpacked, where, expected=manifest.files[SPANS])
            state_file = None
            if manifest.state is not None:
                state_file = scratch / STATE
                _unpack(archive, members[STATE], state_file, manifest.files[STATE], where)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError, RuntimeError):
        raise BundleError(f"{damaged} (not a readable zip archive); export it again") from None
    except OSError as e:
        raise BundleError(f"cannot read {where}: {e.strerror or e}") from None
    return Bundle(manifest, check_spans(spans, manifest, where), state_file)


def _members(archive: zipfile.ZipFile, where: str, max_unpacked: int) -> dict[str, zipfile.ZipInfo]:
    members: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        name = info.filename
        if name not in MEMBERS:
            raise BundleError(
                f"{where} holds a member named {name[:80]!r}; a bundle holds only {', '.join(MEMBERS)}: refused, "
                "nothing imported"
            )
        if name in members:
            raise BundleError(f"{where} holds {name} twice: refused, nothing imported")
        if info.flag_bits & 0x1:
            raise BundleError(f"{where} is encrypted; a bundle never is: refused, nothing imported")
        if info.file_size > max(info.compress_size, 1) * MAX_RATIO:
            raise BundleError(f"{where} unpacks {name} {info.file_size // max(info.compress_size, 1):,} times larger "
                              "than it is packed (a zip bomb?): refused, nothing imported")  # fmt: skip
        members[name] = info
    if MANIFEST not in members:
        raise BundleError(f"{where} is not a cogscope bundle (it has no {MANIFEST}); export one with `cogscope export`")
    unpacked = sum(info.file_size for info in members.values())
    if unpacked > max_unpacked:
        raise BundleError(
            f"{where} unpacks to {unpacked / 1e6:,.1f} MB, more than a bundle may ({max_unpacked / 1e6:,.0f} MB): "
            "refused, nothing imported"
        )
    return members


def _check_listed(manifest: Manifest, members: Mapping[str, zipfile.ZipInfo], where: str) -> None:
    """The members are the ones the manifest lists, and the state is there exactly when it names one."""
    listed = set(manifest.files) | {MANIFEST}
    if set(members) != listed or (STATE in listed) != (manifest.state is not None):
        raise BundleError(
            f"{where} is damaged: it holds {', '.join(sorted(members))} but its manifest lists "
            f"{', '.join(sorted(listed))}; export it again"
        )


def _read(stream: IO[bytes], limit: int, sink: Any = None) -> tuple[bytes, int, str]:
    """Read `stream` to its end in chunks, never more than `limit` bytes: (what was read, unless `sink` took it;
    its size; its SHA-256)."""
    digest, size, parts = hashlib.sha256(), 0, []
    while chunk := stream.read(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise BundleError("more bytes than its manifest says")
        digest.update(chunk)
        if sink is None:
            parts.append(chunk)
        else:
            sink.write(chunk)
    return b"".join(parts), size, digest.hexdigest()


def _json(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    limit: int,
    where: str,
    *,
    expected: Mapping[str, Any] | None = None,
) -> Any:
    name = info.filename
    with archive.open(info) as stream:
        try:
            data, size, digest = _read(stream, limit if expected is None else expected["bytes"])
        except BundleError:
            raise BundleError(
                f"{where} is damaged: its {name} is larger than its manifest says; export it again"
            ) from None
    if expected is not None and (size, digest) != (expected["bytes"], expected["sha256"]):
        raise BundleError(f"{where} is damaged: its {name} fails its checksum; export it again")
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise BundleError(f"{where} is damaged: its {name} is not JSON; export it again") from None


def _unpack(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path, expected: Mapping[str, Any], where: str
) -> None:
    failed = (
        f"the starting state in {where} fails its checksum (it was changed or damaged after export); nothing imported: "
        "export the cycle again"
    )
    with archive.open(info) as stream, open(dest, "xb") as sink:
        try:
            _, size, digest = _read(stream, expected["bytes"], sink)
        except BundleError:
            raise BundleError(failed) from None
    if (size, digest) != (expected["bytes"], expected["sha256"]):
        raise BundleError(failed)


def check_spans(spans: Any, manifest: Manifest, where: str) -> list[dict[str, Any]]:
    """The spans, if they are the manifest's count of spans of its trace, each with the fields Phoenix needs."""
    damaged = f"{where} is damaged: its {SPANS}"
    if not isinstance(spans, list) or len(spans) != manifest.spans:
        raise BundleError(f"{damaged} does not hold the {manifest.spans} spans its manifest counts; export it again")
    seen: set[str] = set()
    roots = 0
    for span in spans:
        context = span.get("context") if isinstance(span, dict) else None
        if (
            not isinstance(context, dict)
            or context.get("trace_id") != manifest.trace_id
            or not isinstance(context.get("span_id"), str)
            or not SPAN_ID.match(context["span_id"])
            or context["span_id"] in seen
            or not all(isinstance(span.get(key), str) for key in ("name", "span_kind", "start_time", "end_time"))
            or not isinstance(span.get("attributes", {}), dict)
        ):
            raise BundleError(f"{damaged} holds a span that is not one of trace {manifest.trace_id}; export it again")
        seen.add(context["span_id"])
        roots += span.get("parent_id") is None
    if roots < 1:
        raise BundleError(f"{damaged} has no root span; export it again")
    return list(spans)
