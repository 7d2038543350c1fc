"""The numpy all-MiniLM-L6-v2 encoder (nlu/project/addons/minilm.py) inside the real Rasa venv.

The venv is the one `frontdesk nlu` builds, so these tests also check that the model package got
installed (the hash-pinned --no-deps step of nlu/runtime.py).  The reference values are what
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
digest = hashlib.sha256((installed_model_dir() / "model.safetensors").read_bytes()).hexdigest()
print(json.dumps({
    "hello": encoder.encode(["hello world"])[0, :5].tolist(),
    "norms": np.linalg.norm(vectors, axis=1).tolist(),
    "cos": (vectors @ vectors.T).tolist(),
    "batch_vs_single": float(np.abs(vectors - single).max()),
    "weights_ok": digest == WEIGHTS_SHA256,
    "model_text": embedding_text(texts["messages"][0]),
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


def test_paraphrases_are_closer_than_different_requests(encoded: dict) -> None:
    cos = encoded["cos"]
    # the lost parcel, said two ways with no word in common but "never"/"not", vs a person / thanks
    assert cos[0][1] > cos[0][2] + 0.2 and cos[0][1] > cos[0][3] + 0.2


def test_the_model_reads_placeholders_as_words(encoded: dict) -> None:
    assert encoded["model_text"] == "my parcel never arrived link angry"
