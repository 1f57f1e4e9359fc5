"""The generated models: how each is built, calibrated and quantized, and its cached files.

A generated model is too large to ship; its files are made on first use and
cached (:mod:`.cache`) under a key that changes whenever what made them can:
the source of the modules that build them, and the onnx, onnxruntime and numpy
versions. ``float``: the network of :mod:`.vision` / :mod:`.transformer` with
seeded weights, batch-norm statistics set from seeded data and BN folded
(:mod:`.batchnorm`); ``qdq`` / ``qoperator``: ONNX Runtime's
``quantize_static`` of it (per-channel int8, MinMax on seeded samples);
``dynamic`` (transformers): ``quantize_dynamic``. Generation needs onnxruntime.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import onnx

from tosac.errors import TosacError
from tosac.models import batchnorm, cache, layers, macs, quantize, shapes, transformer, vision
from tosac.models.catalog import MODELS

SEED = 0
BN_SAMPLES = 8              # seeded inputs the batch-norm statistics are computed from
CALIBRATION_SAMPLES = 8     # seeded inputs quantize_static calibrates on (another seed)
IMAGE_MEAN = np.array([0.485, 0.456, 0.406], np.float32).reshape(1, 3, 1, 1)     # torchvision's normalisation
IMAGE_STD = np.array([0.229, 0.224, 0.225], np.float32).reshape(1, 3, 1, 1)

Samples = list[dict[str, np.ndarray]]


def image_samples(shape: tuple[int, ...], count: int, seed: int) -> Samples:
    """Seeded image-like inputs, normalised as torchvision does: blocky colour fields at a random scale,
    brightness and contrast, plus pixel noise; images differ in their global statistics as photos do."""
    rng = np.random.default_rng(seed)
    _, c, h, w = shape
    out = []
    for _ in range(count):
        grid = int(rng.integers(2, 9))
        coarse = rng.uniform(0.0, 1.0, (c, grid, grid))
        image = coarse[:, np.arange(h) * grid // h][:, :, np.arange(w) * grid // w]
        image = rng.uniform(0.3, 1.2) * (image - 0.5) + rng.uniform(0.3, 0.7) + rng.normal(0.0, 0.05, (c, h, w))
        x = (np.clip(image, 0.0, 1.0)[None].astype(np.float32) - IMAGE_MEAN[:, :c]) / IMAGE_STD[:, :c]
        out.append({"input": x.astype(np.float32)})
    return out


def token_samples(seq: int, vocab: int, count: int, seed: int) -> Samples:
    """Seeded token ids with a [CLS]-like first token, a random length of 8..seq, padding (id 0) masked off."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        length = int(rng.integers(8, seq + 1))
        ids = np.zeros((1, seq), np.int64)
        ids[0, 0], ids[0, 1:length] = 101 % vocab, rng.integers(1, vocab, length - 1)
        mask = (np.arange(seq) < length).astype(np.int64)[None]
        out.append({"input_ids": ids, "attention_mask": mask})
    return out


@dataclass(frozen=True)
class Recipe:
    """How a generated model is built (``seed`` None: a skeleton with zero weights) and fed."""
    build: Callable[[int | None], onnx.ModelProto]
    samples: Callable[[int, int], Samples]          # (count, seed) -> feeds


def _images(name: str) -> Callable[[int, int], Samples]:
    return lambda count, seed: image_samples(MODELS[name].input_shape, count, seed)


RECIPES: dict[str, Recipe] = {
    "mobilenet_v2": Recipe(vision.mobilenet_v2, _images("mobilenet_v2")),
    "mobilenet_v3_small": Recipe(vision.mobilenet_v3_small, _images("mobilenet_v3_small")),
    "efficientnet_b0": Recipe(vision.efficientnet_b0, _images("efficientnet_b0")),
    "resnet18": Recipe(vision.resnet18, _images("resnet18")),
    "resnet50": Recipe(vision.resnet50, _images("resnet50")),
    "yolo_tiny": Recipe(vision.yolo_tiny, _images("yolo_tiny")),
    "bert_tiny": Recipe(transformer.bert_tiny, lambda count, seed: token_samples(32, 1000, count, seed)),
}

# Every module whose source decides what a generated file contains (the cache key hashes them).
_SOURCES = (batchnorm, cache, layers, macs, quantize, shapes, transformer, vision)


def skeleton(name: str) -> onnx.ModelProto:
    """The float model's graph and shapes with zero weights (no onnxruntime, no calibration): for op types
    and MACs, which do not depend on the weights."""
    return batchnorm.fold(RECIPES[name].build(None))


def float_model(name: str) -> onnx.ModelProto:
    """The float network: seeded weights, batch-norm statistics from seeded inputs, BN folded."""
    recipe = RECIPES[name]
    model = recipe.build(SEED)
    if any(node.op_type == "BatchNormalization" for node in model.graph.node):
        batchnorm.calibrate(model, recipe.samples(BN_SAMPLES, SEED + 1))
        model = batchnorm.fold(model)
    onnx.checker.check_model(model, full_check=True)
    return model


def quantized(name: str, model: onnx.ModelProto, fmt: str) -> onnx.ModelProto:
    """``model`` (the float network of ``name``) quantized by ONNX Runtime into ``fmt``."""
    if fmt == "dynamic":
        return quantize.quantize_dynamic(model)
    return quantize.quantize_static(model, RECIPES[name].samples(CALIBRATION_SAMPLES, SEED + 2), fmt)


def _version(module: str) -> str:
    try:
        return importlib.metadata.version(module)
    except importlib.metadata.PackageNotFoundError:
        try:
            return str(importlib.import_module(module).__version__)
        except ImportError:
            return "absent"


def cache_key(name: str, fmt: str) -> str:
    """16 hex digits of a hash of the builders' source, the seeds and the onnx/onnxruntime/numpy versions."""
    modules = _SOURCES + (_tflite_sources() if fmt == "tflite" else ())
    sources = {m.__name__: hashlib.sha256(Path(m.__file__).read_bytes()).hexdigest() for m in modules}
    sources[__name__] = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    record = {"model": name, "format": fmt, "sources": sources, "seed": SEED,
              "versions": {m: _version(m) for m in ("onnx", "onnxruntime", "numpy")}}
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]


def _require_onnxruntime(name: str, fmt: str) -> None:
    try:
        import onnxruntime  # noqa: F401
    except ImportError as e:
        raise TosacError(f"model '{name}' ({fmt}) is generated on first use and that needs onnxruntime, which is "
                         f"not installed ({e}): pip install 'tosac[bench]' (or 'tosac[test]')") from None


# Files this process has already checked (path -> (mtime_ns, size)): checked once, not at every call.
_checked: dict[Path, tuple[int, int]] = {}


def cached(name: str, fmt: str) -> tuple[Path, onnx.ModelProto | None]:
    """The cached ``fmt`` file of ``name``, generated (and the float model first) if missing or damaged.

    Returns the path, and the model when it had to be loaded or built anyway (None: known good, not loaded).
    """
    key = cache_key(name, fmt)
    path = cache.model_file(name, fmt, key)
    if fmt == "tflite":
        return _cached_tflite(name, path, key), None
    try:
        stat = path.stat()
        if _checked.get(path) == (stat.st_mtime_ns, stat.st_size):
            return path, None
    except FileNotFoundError:
        pass
    model = cache.read_valid(path, key)
    if model is None:
        _require_onnxruntime(name, fmt)
        if fmt == "float":
            model = float_model(name)
        else:
            model = quantized(name, load_cached(name, "float"), fmt)
        cache.write_atomic(path, model, key, {"tosac.model": name, "tosac.format": fmt})
        cache.prune(path)
    stat = path.stat()
    _checked[path] = (stat.st_mtime_ns, stat.st_size)
    return path, model


def _tflite_sources() -> tuple:
    from tosac.frontends.tflite import writer
    from tosac.models import tflite_export
    return (tflite_export, writer)


def _cached_tflite(name: str, path: Path, key: str) -> Path:
    """The ``.tflite`` form: the cached QDQ model exported (:mod:`.tflite_export`); the key is in its description."""
    from tosac.frontends.tflite.reader import read_model
    from tosac.models.tflite_export import export_tflite

    description = f"tosac model {name}, {cache.KEY_PROP}={key}"
    try:
        stat = path.stat()
        if _checked.get(path) == (stat.st_mtime_ns, stat.st_size):
            return path
        if read_model(path).description != description:
            raise ValueError("foreign key")
    except Exception:                                    # missing or damaged: rebuild rather than trust it
        cache.write_bytes_atomic(path, export_tflite(load_cached(name, "qdq"), description))
        cache.prune(path)
    stat = path.stat()
    _checked[path] = (stat.st_mtime_ns, stat.st_size)
    return path


def load_cached(name: str, fmt: str) -> onnx.ModelProto:
    path, model = cached(name, fmt)
    return model if model is not None else onnx.load(str(path))
