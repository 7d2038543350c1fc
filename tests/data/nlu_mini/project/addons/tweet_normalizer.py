"""A stand-in for the real project's tweet normaliser: whitespace tokens minus @mentions and URLs.

It exists so that the test project has the same shape as nlu/project (a custom component imported
from ``addons`` via PYTHONPATH), which is what the runtime must get right.
"""

from __future__ import annotations

import re
from typing import List, Text

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.nlu.tokenizers.tokenizer import Token
from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer
from rasa.shared.nlu.training_data.message import Message

_NOISE = re.compile(r"^(@\w+|https?://\S+)$")


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_TOKENIZER, is_trainable=False)
class TweetNormalizer(WhitespaceTokenizer):
    def tokenize(self, message: Message, attribute: Text) -> List[Token]:
        tokens = super().tokenize(message, attribute)
        kept = [t for t in tokens if not _NOISE.match(t.text)]
        return kept or tokens
