"""Tweet-aware tokenizer: normalises X/Telegram text inside the Rasa pipeline.

Why a tokenizer and not a text rewriter: Rasa trains and parses through the same graph, so a
tokenizer runs identically on training examples and on live messages, and because every token
keeps the character span it came from, entity annotations (order numbers, e-mails, ...) and the
`text` returned by /model/parse stay untouched.  Only the token *text* the featurizers see is
normalised:

* leading @handles (the addressee, "@Brand @Other ...") are dropped; other @handles become
  ``__user__``; URLs become ``__url__``; e-mail addresses become ``__email__``;
* ``#hashtag`` becomes its words (``#CustomerService`` -> ``customer``, ``service``);
* HTML entities are decoded (``&amp;`` -> ``&``, ``&lt;3`` -> a heart);
* elongations are squeezed (``sooooo`` -> ``soo``, ``!!!!`` -> ``!``);
* emoji and emoticons map to a few mood tokens (``__emo_pos__``, ``__emo_love__``,
  ``__emo_neg__``, ``__emo_angry__``, ``__emo_other__``); ``?`` becomes ``__qmark__``;
* text is lower-cased when ``lowercase`` is true (default).

The normalised text is also added to the parse result as ``normalized_text`` (set
``expose_normalized_text: false`` to hide it), so a caller can see what the model read.

Only the standard library and rasa are imported: the component ships inside the Rasa project.
"""

from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.tokenizers.tokenizer import Token, Tokenizer
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from addons.tweet_text import HANDLE_ONLY_TOKEN, Normalizer

NORMALIZED_TEXT_KEY = "normalized_text"


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_TOKENIZER, is_trainable=False)
class TweetNormalizer(Tokenizer):
    """A tokenizer that reads tweets the way a person does (see the module docstring)."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        """Returns the component's default config."""
        return {
            "intent_tokenization_flag": False,
            "intent_split_symbol": "_",
            "token_pattern": None,
            "prefix_separator_symbol": None,
            "lowercase": True,
            "keep_question_marks": True,
            "expose_normalized_text": True,
        }

    def __init__(self, config: Dict[Text, Any]) -> None:
        super().__init__(config)
        self._normalize = Normalizer(
            lowercase=bool(config.get("lowercase", True)),
            keep_question_marks=bool(config.get("keep_question_marks", True)),
        )
        self._expose = bool(config.get("expose_normalized_text", True))

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> "TweetNormalizer":
        """Creates the component (it has nothing to train)."""
        return cls(config)

    def tokenize(self, message: Message, attribute: Text) -> List[Token]:
        """Tokens carry normalised text but the character span of the original text."""
        text = message.get(attribute)
        triples = self._normalize(text)
        if not triples:
            # Rasa needs at least one token; a message of only handles or symbols reads as such.
            word = HANDLE_ONLY_TOKEN if text.strip().startswith("@") else "__empty__"
            triples = [(word, 0, len(text))]
        tokens = [Token(t, s, e, lemma=t) for t, s, e in triples]
        tokens = self._apply_token_pattern(tokens)
        if attribute == TEXT and self._expose:
            message.set(NORMALIZED_TEXT_KEY, " ".join(t.text for t in tokens), add_to_output=True)
        return tokens

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        """Tokenizes every training example exactly as a live message would be."""
        return super().process_training_data(training_data)
