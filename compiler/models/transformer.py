"""A BERT-style encoder as ``torch.onnx.export`` (opset 17) writes Hugging Face's ``BertModel`` + a classifier.

Token ids (int64) are looked up with Gather in the word-embedding table; the
position and token-type embeddings of a fixed-length input are constants
(torch folds their lookups of constant buffers) added to it. Each layer:
Q/K/V as MatMul + Add, ``view()`` through Shape -> Gather -> Unsqueeze ->
Concat -> Reshape, Transpose to heads, Q·K^T as a MatMul of two runtime
tensors ([1, heads, seq, seq]), Div by sqrt(head size), the attention mask
added (``(1 - mask) * -10000`` after Cast, as BERT builds it), Softmax over
the last axis, ·V, back through Transpose and Reshape, output projection,
residual Add and LayerNormalization; the feed-forward block with GELU in its
erf form ``x * 0.5 * (1 + Erf(x / sqrt 2))``. A mean over the sequence
(ReduceMean) and a Gemm classify.
"""
from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto

from tosac.models.layers import OnnxNet


class _Encoder:
    def __init__(self, b: OnnxNet, hidden: int, heads: int):
        self.b, self.hidden, self.heads, self.head_size = b, hidden, heads, hidden // heads

    def dense(self, x: str, scope: str, units: int) -> str:
        """``nn.Linear`` on a 3-D input: MatMul with the transposed weight, then Add of the bias."""
        b = self.b
        *lead, k = b.shapes[x]
        prefix = scope[1:].replace("/", ".")
        std = math.sqrt(2.0 / (k + units))                                  # Xavier-normal
        y = b.node("MatMul", [x, b.normal(f"onnx::MatMul_{prefix}", (k, units), std)], scope, (*lead, units))
        return b.add(b.normal(f"{prefix}.bias", (units,), 0.02), y, scope)

    def layer_norm(self, x: str, scope: str) -> str:
        b = self.b
        c = b.shapes[x][-1]
        prefix = scope[1:].replace("/", ".")
        gamma = b.initializer(f"{prefix}.weight", np.ones(c, np.float32))
        beta = b.initializer(f"{prefix}.bias", np.zeros(c, np.float32))
        return b.node("LayerNormalization", [x, gamma, beta], scope, b.shapes[x], axis=-1, epsilon=1e-12)

    def _dim(self, x: str, scope: str, axis: int) -> str:
        """``x.size(axis)`` as a 1-element tensor: Shape -> Gather(scalar index) -> Unsqueeze(axes [0])."""
        b = self.b
        shape = b.node("Shape", [x], scope, (len(b.shapes[x]),), dtype=TensorProto.INT64)
        size = b.node("Gather", [shape, b.constant(scope, np.array(axis, np.int64))], scope, (),
                      dtype=TensorProto.INT64, axis=0)
        return b.node("Unsqueeze", [size, b.constant(scope, np.array([0], np.int64))], scope, (1,),
                      dtype=TensorProto.INT64)

    def view(self, x: str, scope: str, keep: int, tail: tuple[int, ...]) -> str:
        """``x.view(x.size()[:keep] + tail)`` with the shape computed at runtime, as torch traces it."""
        b = self.b
        parts = [self._dim(x, scope, axis) for axis in range(keep)]
        parts += [b.constant(scope, np.array([d], np.int64)) for d in tail]
        shape = b.node("Concat", parts, scope, (keep + len(tail),), dtype=TensorProto.INT64, axis=0)
        return b.node("Reshape", [x, shape], scope, (*b.shapes[x][:keep], *tail))

    def transpose(self, x: str, scope: str, perm: list[int]) -> str:
        shape = self.b.shapes[x]
        return self.b.node("Transpose", [x], scope, tuple(shape[p] for p in perm), perm=perm)

    def attention(self, x: str, scope: str, mask: str) -> str:
        b = self.b
        batch, seq, _ = b.shapes[x]
        heads = []
        for part in ("query", "key", "value"):
            y = self.dense(x, f"{scope}/self/{part}", self.hidden)
            y = self.view(y, f"{scope}/self/{part}", 2, (self.heads, self.head_size))
            heads.append(self.transpose(y, f"{scope}/self/{part}/Transpose", [0, 2, 1, 3]))
        q, k, v = heads
        k_t = self.transpose(k, f"{scope}/self/Transpose", [0, 1, 3, 2])
        scores = b.node("MatMul", [q, k_t], f"{scope}/self/MatMul", (batch, self.heads, seq, seq))
        scores = b.node("Div", [scores, b.scalar("attention.sqrt_head_size", math.sqrt(self.head_size))],
                        f"{scope}/self/Div", b.shapes[scores])
        scores = b.add(scores, mask, f"{scope}/self/Add")
        probs = b.node("Softmax", [scores], f"{scope}/self/Softmax", b.shapes[scores], axis=-1)
        context = b.node("MatMul", [probs, v], f"{scope}/self/MatMul_1", (batch, self.heads, seq, self.head_size))
        context = self.transpose(context, f"{scope}/self/Transpose_1", [0, 2, 1, 3])
        context = self.view(context, f"{scope}/self/context", 2, (self.hidden,))
        y = self.dense(context, f"{scope}/output/dense", self.hidden)
        return self.layer_norm(b.add(y, x, f"{scope}/output/Add"), f"{scope}/output/LayerNorm")

    def gelu(self, x: str, scope: str) -> str:
        """GELU (approximate='none') as torch exports it: Div(sqrt 2) -> Erf -> Add 1 -> Mul x -> Mul 0.5."""
        b = self.b
        y = b.node("Div", [x, b.scalar("gelu.sqrt2", math.sqrt(2.0))], scope, b.shapes[x])
        y = b.node("Erf", [y], scope, b.shapes[x])
        y = b.add(y, b.scalar("gelu.one", 1.0), scope)
        y = b.mul(x, y, scope)
        return b.mul(y, b.scalar("gelu.half", 0.5), scope)

    def feed_forward(self, x: str, scope: str, units: int) -> str:
        y = self.gelu(self.dense(x, f"{scope}/intermediate/dense", units), f"{scope}/intermediate/gelu")
        y = self.dense(y, f"{scope}/output/dense", self.hidden)
        return self.layer_norm(self.b.add(y, x, f"{scope}/output/Add"), f"{scope}/output/LayerNorm")


def bert_tiny(seed: int | None, layers: int = 2, hidden: int = 128, heads: int = 4, ffn: int = 512,
              seq: int = 32, vocab: int = 1000, classes: int = 2) -> onnx.ModelProto:
    """A 2-layer BERT encoder (hidden 128, 4 heads, FFN 512) over 32 tokens, mean-pooled, with a classifier."""
    b = OnnxNet("bert_tiny", seed)
    ids = b.input("input_ids", (1, seq), TensorProto.INT64)
    mask = b.input("attention_mask", (1, seq), TensorProto.INT64)
    enc = _Encoder(b, hidden, heads)

    # (1 - mask[:, None, None, :].float()) * -10000, as BertModel.get_extended_attention_mask writes it
    m = b.node("Unsqueeze", [mask, b.constant("/embeddings/mask", np.array([1, 2], np.int64))], "/mask",
               (1, 1, 1, seq), dtype=TensorProto.INT64)
    m = b.node("Cast", [m], "/mask", (1, 1, 1, seq), to=TensorProto.FLOAT)
    m = b.node("Sub", [b.scalar("mask.one", 1.0), m], "/mask", (1, 1, 1, seq))
    m = b.node("Mul", [m, b.scalar("mask.min", -10000.0)], "/mask", (1, 1, 1, seq))

    table = b.normal("embeddings.word_embeddings.weight", (vocab, hidden), 1.0)
    x = b.node("Gather", [table, ids], "/embeddings/word_embeddings", (1, seq, hidden), axis=0)
    x = b.add(x, b.normal("embeddings.token_type_embeddings.folded", (1, seq, hidden), 0.1), "/embeddings")
    x = b.add(x, b.normal("embeddings.position_embeddings.folded", (1, seq, hidden), 0.5), "/embeddings")
    x = enc.layer_norm(x, "/embeddings/LayerNorm")
    for i in range(layers):
        x = enc.attention(x, f"/encoder/layer.{i}/attention", m)
        x = enc.feed_forward(x, f"/encoder/layer.{i}", ffn)
    pooled = b.reduce_mean(x, "/pooler/ReduceMean", axes=[1], keepdims=False)
    weight = b.normal("classifier.weight", (classes, hidden), math.sqrt(1.0 / hidden))
    logits = b.node("Gemm", [pooled, weight, b.initializer("classifier.bias", np.zeros(classes, np.float32))],
                    "/classifier/Gemm", (1, classes), alpha=1.0, beta=1.0, transB=1)
    return b.model([logits], ["logits"])
