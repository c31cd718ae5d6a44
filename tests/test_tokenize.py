"""The tokeniser (data/tokenize.py) gives exactly the tokens of its defining regex,
`\\w+(?=n't\\b)|n't\\b|'\\w+|\\w+|[^\\w\\s]` (the spelling it had before it was reordered
to run faster), on tricky inputs and on random strings made of the characters that
matter: letters, n, ', t, digits, punctuation, unicode, white space of several kinds."""

import random
import re

import pytest

from textclf_jax.text import tokenize
from textclf_jax.text.tokenize import NEGATIONS, STOPWORDS, Tokenizer

DEFINITION = re.compile(r"\w+(?=n't\b)|n't\b|'\w+|\w+|[^\w\s]", re.UNICODE)


def reference(text, lowercase=True, remove_stopwords=False, keep_negations=True, max_len=0):
  """The tokeniser as first written: tags out, lowercase, the defining regex, stop words."""
  text = tokenize._TAGS.sub(" ", text)
  if lowercase:
    text = text.lower()
  tokens = DEFINITION.findall(text)
  if remove_stopwords:
    tokens = [t for t in tokens if t.lower() not in STOPWORDS
              or (keep_negations and t.lower() in NEGATIONS)]
  return tokens[:max_len] if max_len else tokens


OPTIONS = [dict(lowercase=lc, remove_stopwords=rs, keep_negations=kn)
           for lc in (True, False) for rs, kn in ((False, True), (True, True), (True, False))]

TRICKY = [
    "", " ", "\n\t  \u00a0\u2009\u3000", "Don't stop, it's GREAT!", "DON'T", "DOn't", "don'T",
    "n't", " n't ", "xn't", "nn't", "n'tn't", "don't've", "won't!", "can't.", "ain't-it",
    "'don't", "x'don't", "don'tx", "don't'x", "don 't", "do n't", "don''t", "don't_", "don't9",
    "it's", "'s", "'", "''", "'''", "rock'n'roll", "o'neill's", "I'm, you're; we'd.",
    "l'été n'est pas", "¿Qué?¡Sí!", "naïve café résumé", "ΣΊΣΥΦΟΣ ΟΔΌΣ", "İstanbul KELVIN \u212a",
    "日本語のテキストです。", "emoji 😀👍🏽 ok", "e\u0301 combining", "zero\u200bwidth", "tab\there",
    "snake_case and __dunder__", "3.14, 1,000 and 2nd", "a<br />b<br/>c<i>d</i>", "<>< >",
    "<averyveryveryverylongtagname>", "…—–“quoted”‘single’", "don’t (curly)", "C++ & C#",
    "wasn't isn't aren't couldn't shouldn't WOULDN'T", "no not nor never none cannot without",
    "The the THE a an AN", "n'T", "N't", "\u0130n't", "ǅn't", "\u00b2n't 1n't _n't",
]


@pytest.mark.parametrize("options", OPTIONS)
def test_tricky_inputs_give_the_definitions_tokens(options):
  tokenizer = Tokenizer(**options)
  for text in TRICKY:
    assert tokenizer(text) == reference(text, **options), repr(text)


def test_random_strings_give_the_definitions_tokens():
  alphabet = list("nnnn''''tttt  ") + list("adoiwx_09.,!?-<>/\n") + ["\u00a0", "é", "Ñ", "Σ",
                                                                     "ς", "’", "😀", "\u0301"]
  rng = random.Random(0)
  for options in OPTIONS:
    tokenizer = Tokenizer(**options)
    for _ in range(3000):
      text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
      assert tokenizer(text) == reference(text, **options), repr(text)


def test_examples_and_max_len():
  tok = Tokenizer()
  assert tok("Don't stop, it's GREAT!") == ["do", "n't", "stop", ",", "it", "'s", "great", "!"]
  assert tok("'don't") == ["'don", "'t"]  # "'" + a word: the word keeps its n
  assert tok("don 't") == ["don", "'t"]  # n't only when it is one with its word
  assert tok("") == [] and tok(" \n ") == []
  assert Tokenizer(lowercase=False)("DON'T DOn't") == ["DON", "'T", "DO", "n't"]
  assert Tokenizer(max_len=3)(" ".join("abcdef")) == ["a", "b", "c"]
