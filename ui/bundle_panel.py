"""The Traces tab's bundle controls: download the open cycle's reproduction bundle, upload a bundle to import it.

Anyone who can open a cycle may download its bundle: it holds what the Traces tab and replay already show of it
(its spans, redacted when recorded and again on export) and its starting state, scrubbed of secrets. An upload is
untrusted input, taken only from people who may run recorded code (the operator, or every user when the operator
started the app with --allow-browser-commands): it adds a cycle everyone sees and a state file to the data dir. The
upload is refused past BUNDLE_MAX_MB (Gradio's own cap, and again here); what it holds is checked by
`ui.bundles.open_bundle` (no foreign members, no paths, no zip bombs, checksums) before anything is written.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from cogscope import defaults
from cogscope.telemetry import BUNDLE_SUFFIX

from .bundles import bundle_name, export_bundle, export_lines, import_lines, load_bundle, open_bundle
from .errors import UsageError
from .pickers import chosen_project
from .render import inline
from .runtime import Runtime

KEEP_DOWNLOADS_S = 600.0  # a bundle made for download stays this long (Gradio copies it into its cache at once)
UPLOAD_REFUSED = (
    "Importing bundles is the operator's: on a shared cogscope, only when the operator started it with "
    "--allow-browser-commands (an imported cycle is recorded code others may run)."
)


@dataclass
class BundleControls:
    export_button: Any
    download: Any
    upload: Any
    report: Any


def bundle_controls(runtime: Runtime) -> BundleControls:
    """The controls, in a row under the cycle's summary; call inside the Traces tab's layout."""
    may_import = runtime.policy.runs_anything
    with gr.Row(elem_id="bundle-row"):
        export_button = gr.Button(
            "⬇ Reproduction bundle of this cycle", size="sm", elem_id="bundle-export", scale=0, min_width=260
        )
        upload = gr.UploadButton(
            "⬆ Import a bundle (.cogscope)",
            file_types=[BUNDLE_SUFFIX],
            file_count="single",
            type="filepath",
            size="sm",
            visible=may_import,
            elem_id="bundle-import",
            scale=0,
            min_width=240,
        )
        report = gr.Markdown("", elem_id="bundle-report")
    download = gr.File(label="Reproduction bundle", visible=False, interactive=False, height=80, elem_id="bundle-file")
    return BundleControls(export_button, download, upload, report)


_downloads: list[tempfile.TemporaryDirectory[str]] = []


def _download_folder() -> Path:
    """A fresh folder for one bundle, inside this process's own temporary folder (removed when the process ends);
    bundles older than KEEP_DOWNLOADS_S are removed first."""
    if not _downloads:
        _downloads.append(tempfile.TemporaryDirectory(prefix="cogscope-bundles-"))
    root = Path(_downloads[0].name)
    for old in root.iterdir():
        if time.time() - old.stat().st_mtime > KEEP_DOWNLOADS_S:
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(dir=root))


def make_download(runtime: Runtime, trace_id: str, project: str | None) -> tuple[Any, str]:
    """(the File to download, what the report says) for the open cycle."""
    trace_id = (trace_id or "").strip().lower()
    if not trace_id:
        return gr.update(visible=False, value=None), "❌ Open a cycle first (click a row, or type its trace id)."
    folder = _download_folder()
    try:
        project = chosen_project(runtime, project)
        result = export_bundle(runtime, trace_id, folder / bundle_name(trace_id), project=project, state_or_none=True)
    except UsageError as e:
        shutil.rmtree(folder, ignore_errors=True)
        return gr.update(visible=False, value=None), f"❌ {inline(e)}"
    lines = export_lines(result, shown_path=result.path.name)  # not the server's folder
    note = "Import it elsewhere with `cogscope import FILE`, or the ⬆ button of a cogscope Traces tab."
    return gr.update(visible=True, value=str(result.path)), " ".join(inline(line) for line in [*lines, note])


def take_upload(runtime: Runtime, path: str | None, project: str | None) -> tuple[str, str | None]:
    """(what the report says, the imported trace id or None) for an uploaded file, which is removed afterwards."""
    if not path:
        return "", None
    upload = Path(path)
    try:
        if not runtime.policy.runs_anything:
            return f"❌ {UPLOAD_REFUSED}", None
        if upload.stat().st_size > defaults.BUNDLE_MAX_MB * 1_000_000:
            return f"❌ The file is larger than a bundle may be ({defaults.BUNDLE_MAX_MB} MB); nothing imported.", None
        with tempfile.TemporaryDirectory(prefix="cogscope-import-") as scratch:
            bundle = open_bundle(upload, Path(scratch), name=upload.name)
            result = load_bundle(runtime, bundle, project=(project or "").strip() or None)
    except UsageError as e:
        return f"❌ {inline(e)}", None
    finally:
        upload.unlink(missing_ok=True)  # Gradio's copy of the upload: not kept
    return "✅ " + " ".join(inline(line) for line in import_lines(result, commands=False)), result.manifest.trace_id


def wire_bundle_controls(
    controls: BundleControls,
    runtime: Runtime,
    *,
    trace_box: Any,
    project: Any,
    opened: list[Any],
    open_trace: Callable[..., tuple[Any, ...]],
    whole: Any,
) -> None:
    """Download: the bundle of the cycle in `trace_box`. Upload: import it, then open it (`open_trace` fills
    `opened`, as opening a cycle does)."""

    def on_export(trace_id: str, project_v: str | None) -> tuple[Any, str]:
        return make_download(runtime, trace_id, project_v)

    def on_upload(path: str | None, whole_v: bool, project_v: str | None) -> tuple[Any, ...]:
        report, trace_id = take_upload(runtime, path, project_v)
        if trace_id is None:
            return (report, gr.skip(), *(gr.skip() for _ in opened))
        return (report, trace_id, *open_trace(runtime, trace_id, whole_v, project_v))

    controls.export_button.click(
        on_export, inputs=[trace_box, project], outputs=[controls.download, controls.report], api_name="export_bundle"
    )
    controls.upload.upload(
        on_upload,
        inputs=[controls.upload, whole, project],
        outputs=[controls.report, trace_box, *opened],
        api_name=False,
    )
