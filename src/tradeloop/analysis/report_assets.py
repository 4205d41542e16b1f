"""plotly.js for the HTML reports: packed once, on a background thread, and cached on disk.

A report inlines plotly.js (4.8 MB) gzip-compressed and base64-encoded (about 2.3 MB), so the
file stays self-contained. Compressing it costs about a tenth of a second of CPU, the same
for every report, so:

- :func:`prepare_plotly` starts packing on a background thread (zlib and file reads run
  without the GIL), e.g. before a backtest starts; :func:`plotly_script` waits for it (or
  packs, when nothing started it). A process packs once per cache folder.
- With a cache folder (``output/.report-assets`` of a run store) the compressed bundle is
  kept there as ``plotly-<bundle key>-<sha256 of the file>.js.gz``: the bundle key names the
  installed ``plotly.min.js`` (path, size, modification time), the digest its packed content.
  A cached file is used only if its bytes hash to the digest in its name; a corrupt or
  truncated one is deleted and packed again. Writes go to a temporary name and are renamed,
  so a reader never sees a partial file. The cache is best effort: a folder that cannot be
  read or written only costs the packing.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import logging
import os
import threading
from concurrent.futures import Future
from pathlib import Path

__all__ = ["REPORT_ASSETS_FOLDER", "packed_plotly", "plotly_js", "plotly_script", "prepare_plotly"]

logger = logging.getLogger(__name__)

#: folder of the cached report assets in a run store (next to ``runs/``)
REPORT_ASSETS_FOLDER = ".report-assets"

#: changes whenever the packing does (a new value misses every cached file)
_PACKING = "gzip-1-mtime-0"
#: hex digits of the hashes in a cached file's name
_HASH_CHARS = 32

_lock = threading.Lock()
#: the report's script tag, by cache folder (None: no cache), packed or being packed
_scripts: dict[Path | None, Future[str]] = {}


def _bundle() -> Path | None:
    """The ``plotly.min.js`` that ships with the plotly package (None: not found)."""
    from importlib.util import find_spec

    spec = find_spec("plotly")
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        bundle = Path(folder) / "package_data" / "plotly.min.js"
        if bundle.is_file():
            return bundle
    return None


def plotly_js() -> str:
    """The plotly.js bundle that ships with the plotly package, read without importing plotly
    (``plotly.offline.get_plotlyjs`` imports the whole package: about 0.5 s and 700 modules).
    """
    bundle = _bundle()
    if bundle is not None:
        return bundle.read_text(encoding="utf-8")
    from plotly.offline import get_plotlyjs  # an unusual install: let plotly find it

    return str(get_plotlyjs())


def _pack() -> bytes:
    return gzip.compress(plotly_js().encode("utf-8"), 1, mtime=0)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:_HASH_CHARS]


def packed_plotly(cache: Path | None = None) -> bytes:
    """plotly.js gzip-compressed, from the cache folder ``cache`` when it holds a sound copy
    (stored there when it does not); packed here without one."""
    bundle = _bundle()
    if cache is None or bundle is None:
        return _pack()
    stat = bundle.stat()
    identity = f"{_PACKING}|{bundle.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    prefix = f"plotly-{hashlib.sha256(identity.encode()).hexdigest()[:_HASH_CHARS]}-"
    try:
        for found in sorted(cache.glob(f"{prefix}*.js.gz")):
            data = found.read_bytes()
            if found.name == f"{prefix}{_digest(data)}.js.gz":
                return data
            logger.warning("report asset %s is damaged: packed again", found)
            found.unlink(missing_ok=True)
    except OSError as exc:
        logger.debug("report assets in %s not read: %s", cache, exc)
    data = _pack()
    try:
        cache.mkdir(parents=True, exist_ok=True)
        tmp = cache / f".{prefix}{os.getpid()}-{threading.get_ident()}.tmp"
        tmp.write_bytes(data)
        tmp.replace(cache / f"{prefix}{_digest(data)}.js.gz")
    except OSError as exc:
        logger.debug("report asset not cached in %s: %s", cache, exc)
    return data


def _script(packed: bytes) -> str:
    """The script tag that unpacks ``packed`` with the browser's ``DecompressionStream`` and
    draws the charts once plotly.js is loaded."""
    return (
        '<script type="text/javascript">\n'
        "(function () {\n"
        f'  var b64 = "{base64.b64encode(packed).decode("ascii")}";\n'
        "  var raw = atob(b64), bytes = new Uint8Array(raw.length);\n"
        "  for (var i = 0; i < raw.length; i++) { bytes[i] = raw.charCodeAt(i); }\n"
        "  var stream = new Blob([bytes]).stream().pipeThrough("
        'new DecompressionStream("gzip"));\n'
        "  new Response(stream).text().then(function (code) {\n"
        '    var s = document.createElement("script");\n'
        "    s.text = code;\n"
        "    document.head.appendChild(s);\n"
        "    if (window.tradeloopDraw) { window.tradeloopDraw(); }\n"
        "  });\n"
        "})();\n"
        "</script>"
    )


def prepare_plotly(cache: Path | None = None) -> Future[str]:
    """Start packing plotly.js for the reports on a background thread (once per process and
    cache folder; see the module) and return its future script tag."""
    with _lock:
        future = _scripts.get(cache)
        if future is not None:
            return future
        future = _scripts[cache] = Future()

    def work() -> None:
        try:
            future.set_result(_script(packed_plotly(cache)))
        except BaseException as exc:  # handed to whoever waits for the script
            future.set_exception(exc)

    threading.Thread(target=work, name="plotly-pack", daemon=True).start()
    return future


def plotly_script(cache: Path | None = None) -> str:
    """The report's plotly.js script tag: gzip-compressed and base64-encoded (about 2.3 MB
    instead of 4.8 MB), unpacked by the browser's own ``DecompressionStream`` when the page
    opens, so the file stays self-contained and works offline; the charts are drawn once it
    is loaded. Waits for :func:`prepare_plotly` of ``cache`` (started here if needed)."""
    return prepare_plotly(cache).result()
