"""Rebuild the shipped model files: ``python -m tosac.models.build [--models kws,vww] [--out-dir DIR]``.

Each network of :mod:`.networks` (built in code; its float form is not shipped) is
quantized by ONNX Runtime's ``quantize_static`` (int8 activations and weights,
per-channel weights, MinMax calibration on seeded data) into
``<name>.qdq.onnx`` and ``<name>.qoperator.onnx``, and the QDQ model is written as
the int8 TFLite file ``<name>.tflite`` (:mod:`.tflite_export`). Needs onnxruntime;
``--tflite-only`` rewrites only the TFLite files from the shipped QDQ models.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import onnx

from tosac.models import DATA, MODELS
from tosac.models.networks import ARCHITECTURES, calibration_data
from tosac.models.quantize import quantize_static
from tosac.models.tflite_export import export_tflite

SEED = 0
CALIBRATION_SAMPLES = 16


def quantize(name: str, model: onnx.ModelProto, fmt: str, seed: int = SEED) -> onnx.ModelProto:
    """``model`` quantized to int8 by ONNX Runtime in the QDQ or QOperator format."""
    samples = calibration_data(name, MODELS[name].input_shape, CALIBRATION_SAMPLES, seed)
    return quantize_static(model, ({"input": sample} for sample in samples), fmt)


def build(names: list[str], out_dir: Path, tflite_only: bool = False) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        written = []
        if not tflite_only:
            model = ARCHITECTURES[name](SEED)
            for fmt in ("qdq", "qoperator"):
                written.append(out_dir / f"{name}.{fmt}.onnx")
                onnx.save(quantize(name, model, fmt), written[-1])
        written.append(out_dir / f"{name}.tflite")
        qdq = onnx.load(str(out_dir / f"{name}.qdq.onnx" if not tflite_only else DATA / f"{name}.qdq.onnx"))
        written[-1].write_bytes(export_tflite(qdq, f"tosac model {name} (MLPerf Tiny), from {name}.qdq.onnx"))
        for path in written:
            print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(ARCHITECTURES))
    parser.add_argument("--out-dir", type=Path, default=DATA)
    parser.add_argument("--tflite-only", action="store_true", help="only rewrite the .tflite files")
    args = parser.parse_args()
    build(args.models.split(","), args.out_dir, args.tflite_only)


if __name__ == "__main__":
    main()
