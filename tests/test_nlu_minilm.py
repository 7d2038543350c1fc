"""The numpy all-MiniLM-L6-v2 encoder (nlu/project/addons/minilm.py) inside the real Rasa venv.

The venv is the one `frontdesk nlu` builds, so these tests also check that the model package got
installed (the hash-pinned --no-deps step of nlu/rasa_venv.py).  The reference values are what
sentence-transformers returns for all-MiniLM-L6-v2 (also fastembed's canonical vector).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures.nlu import run_in_rasa_venv

_SCRIPT = r"""
import json, sys
import numpy as np
from addons.minilm import WEIGHTS_SHA256, installed_model_dir, shared_encoder
from addons.sentence_embedder import embedding_text
import hashlib
texts = json.loads(sys.stdin.read())
encoder = shared_encoder()
vectors = encoder.encode([embedding_text(t) for t in texts["messages"]])
single = np.vstack([encoder.encode([embedding_text(t)]) for t in texts["messages"]])
# the first 1, 2, … 33 words of one sentence, run at the padded length and at the exact length
import addons.minilm as minilm
words = ("my parcel never arrived and nobody in your support team has answered a single one of "
         "the six emails i sent since monday so i would like my money back today please").split()
varied = [" ".join(words[:k]) for k in range(1, len(words) + 1)]
padded = encoder.encode(varied, batch_size=1)
friendly, minilm._gemm_friendly = minilm._gemm_friendly, lambda n: n
exact = encoder.encode(varied, batch_size=1)
minilm._gemm_friendly = friendly
digest = hashlib.sha256((installed_model_dir() / "model.safetensors").read_bytes()).hexdigest()
print(json.dumps({
    "hello": encoder.encode(["hello world"])[0, :5].tolist(),
    "norms": np.linalg.norm(vectors, axis=1).tolist(),
    "cos": (vectors @ vectors.T).tolist(),
    "batch_vs_single": float(np.abs(vectors - single).max()),
    "weights_ok": digest == WEIGHTS_SHA256,
    "model_text": embedding_text(texts["messages"][0]),
    "padding_changes": float(np.abs(padded - exact).max()),
    "padded_token_counts": sorted({len(encoder.tokenizer.encode(t)) for t in varied}),
}))
"""


@pytest.fixture(scope="module")
def encoded(rasa_venv: Path) -> dict:
    messages = [
        "@Brand my parcel never arrived https://t.co/x 😡",
        "the package I ordered still has not been delivered",
        "can I speak to a real person please?",
        "thanks so much, you guys are great :)",
    ]
    return run_in_rasa_venv(rasa_venv, _SCRIPT, stdin=json.dumps({"messages": messages}), timeout_s=120)


def test_the_model_package_is_installed_with_the_published_weights(encoded: dict) -> None:
    assert encoded["weights_ok"]


def test_embedding_matches_sentence_transformers(encoded: dict) -> None:
    reference = [-0.034478, 0.03102, 0.00673, 0.02611, -0.039362]  # "hello world", all-MiniLM-L6-v2
    assert encoded["hello"] == pytest.approx(reference, abs=2e-4)


def test_embeddings_are_unit_vectors_and_batching_does_not_change_them(encoded: dict) -> None:
    assert encoded["norms"] == pytest.approx([1.0] * 4, abs=1e-5)
    assert encoded["batch_vs_single"] < 1e-5


def test_padding_a_message_for_the_matrix_kernels_does_not_change_its_vector(encoded: dict) -> None:
    assert len(encoded["padded_token_counts"]) > 25  # many different lengths were compared
    assert encoded["padding_changes"] < 1e-5


def test_paraphrases_are_closer_than_different_requests(encoded: dict) -> None:
    cos = encoded["cos"]
    # the lost parcel, said two ways with no word in common but "never"/"not", vs a person / thanks
    assert cos[0][1] > cos[0][2] + 0.2 and cos[0][1] > cos[0][3] + 0.2


def test_the_model_reads_placeholders_as_words(encoded: dict) -> None:
    assert encoded["model_text"] == "my parcel never arrived link angry"
