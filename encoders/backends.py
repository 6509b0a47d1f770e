"""Picks the encoder backend named in the settings: `torch` (sentence-transformers; CUDA fp16 when present) or
`onnx-int8` (onnxruntime on CPU, int8 weights; needs the `onnx` extra)."""

from __future__ import annotations

from pathlib import Path

from encoders.text_encoder import TextEncoder


def make_encoder(model: str, backend: str, device: str | None, batch_size: int, data_dir: Path) -> TextEncoder:
    if backend == "torch":
        from encoders.sentence_encoder import SentenceTransformerEncoder

        return SentenceTransformerEncoder(model, device, batch_size)
    if backend == "onnx-int8":
        try:
            from encoders.onnx_encoder import OnnxInt8Encoder
        except ImportError as error:
            raise RuntimeError("encoder backend onnx-int8 needs onnxruntime and onnx: pip install driftrec[onnx]") \
                from error
        return OnnxInt8Encoder(model, batch_size, data_dir / "onnx")
    raise ValueError(f"unknown encoder backend {backend!r}")
