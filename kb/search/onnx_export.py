"""The ONNX export of the bundled embedding model: made once per machine, offline, from
the installed weights, and shared by every process and data dir; and its int8 variant
(dynamic quantization of that export), made once beside it when first asked for.

The export runs under a file lock in a staging folder that is renamed into place only
when complete, so processes starting together export once, and a reader never sees a
half-written model (the rename is atomic on local disks and on NFS alike). The int8 file
is written under the same lock to a staging name and renamed into place the same way.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import warnings
from pathlib import Path

from filelock import FileLock

from kb.core.errors import SettingsError

ONNX_FILE = "onnx/model.onnx"
# int8 weights, one scale per output channel; activations quantized at run time
ONNX_INT8_FILE = "onnx/model_qint8_per_channel.onnx"
EXPORT_TIMEOUT = 900.0  # seconds to wait for another process's export


def onnx_model_dir(name: str, source: Path, cache_dir: Path, *, int8: bool = False) -> Path:
    """The folder of the ONNX export of model `name` in `source`, exporting it first if no
    process has yet (and, with `int8`, quantizing it into `ONNX_INT8_FILE` first if no
    process has yet). Named by a fingerprint of the weights, so a new model version gets a
    new export."""
    target = cache_dir / f"{name}-onnx-{_fingerprint(source)}"
    wanted = ONNX_INT8_FILE if int8 else ONNX_FILE
    if (target / wanted).exists():
        return target
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SettingsError(
            f"Cannot create the model cache {cache_dir} ({exc.strerror}); set KB_CACHE_DIR "
            "to a writable folder or KB_EMBED_BACKEND=torch."
        ) from exc
    with FileLock(str(target.with_name(target.name + ".lock")), timeout=EXPORT_TIMEOUT):
        if not (target / ONNX_FILE).exists():  # another process may have finished it
            _export(source, target)
        if int8 and not (target / ONNX_INT8_FILE).exists():
            _quantize(target)
    return target


def _fingerprint(source: Path) -> str:
    """Names and sizes of the model's files plus its config: cheap, and changes with
    any new release of the weights."""
    digest = hashlib.sha256()
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(source)}\0{path.stat().st_size}\0".encode())
    digest.update((source / "config.json").read_bytes())
    return digest.hexdigest()[:12]


def _export(source: Path, target: Path) -> None:
    from sentence_transformers import SentenceTransformer

    staging = target.with_name(f".{target.name}.{os.getpid()}.staging")
    copy = staging.with_name(staging.name + "-source")
    for folder in (staging, copy):
        shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(source, copy)  # the export writes next to the weights: never the venv
    quiet = logging.getLogger("sentence_transformers")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # "No 'model.onnx' found ... Exporting" is expected here
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on constant tensors
            model = SentenceTransformer(
                str(copy),
                backend="onnx",
                device="cpu",
                model_kwargs={"provider": "CPUExecutionProvider"},
            )
            model.save(str(staging))
    except ImportError as exc:
        raise SettingsError(
            "KB_EMBED_BACKEND=onnx needs sentence-transformers[onnx] "
            "(pip install 'sentence-transformers[onnx]'), or set KB_EMBED_BACKEND=torch."
        ) from exc
    finally:
        quiet.setLevel(level)
        shutil.rmtree(copy, ignore_errors=True)
    if not (staging / ONNX_FILE).exists():
        shutil.rmtree(staging, ignore_errors=True)
        raise SettingsError(f"The ONNX export wrote no {ONNX_FILE}; set KB_EMBED_BACKEND=torch.")
    staging.rename(target)


def _quantize(folder: Path) -> None:
    """Dynamic int8 quantization of the folder's fp32 export, written beside it. Scales per
    output channel: on hotpotqa-100 paragraphs they keep the vectors at cosine 0.99 of
    torch's, where one scale per tensor gave 0.95 (0.91 at worst)."""
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise SettingsError(
            "KB_EMBED_BACKEND=onnx-int8 needs onnxruntime with its quantization tools "
            "(pip install 'sentence-transformers[onnx]'), or set KB_EMBED_BACKEND=onnx."
        ) from exc
    target = folder / ONNX_INT8_FILE
    staging = target.with_name(f".{target.stem}.{os.getpid()}.staging.onnx")
    root = logging.getLogger()
    advice = _DropPreprocessingAdvice()
    root.addFilter(advice)
    try:
        quantize_dynamic(folder / ONNX_FILE, staging, per_channel=True, weight_type=QuantType.QInt8)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    finally:
        root.removeFilter(advice)
    if not staging.exists():
        raise SettingsError(
            f"The int8 quantization wrote no {ONNX_INT8_FILE}; set KB_EMBED_BACKEND=onnx."
        )
    staging.rename(target)


class _DropPreprocessingAdvice(logging.Filter):
    """onnxruntime's quantizer logs advice to pre-process the model (shape inference) on
    every call, as a warning; the quantization works without it, so it is not shown."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()
