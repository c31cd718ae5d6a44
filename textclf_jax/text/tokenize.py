"""Word/punctuation tokeniser that keeps contractions the way PTB does.

"Don't stop, it's great!" -> ["do", "n't", "stop", ",", "it", "'s", "great", "!"]
"""

from __future__ import annotations

import array
import collections
import dataclasses
import functools
import itertools
import re

from textclf_jax.errors import DataError

# The tokens, leftmost first: a word (a run of \w), except that a word ending in "n" followed
# by "'t" and a word boundary gives up its "n": "don't" -> "do", "n't" (a lone "n't" is one
# token); "'" + a word ("'s"); any other character but white space, alone. As one regex:
#   \w+(?=n't\b) | n't\b | '\w+ | \w+ | [^\w\s]
# (that spelling is the definition; tests/test_tokenize.py checks this one against it).
# Here the common case comes first and never backtracks: `\w++` (possessive) takes the
# whole word unless it ends in "n" before "'t\b"; only then do the n't alternatives run.
# The same tokens, ~15% less CPU on IMDB than the spelling above, whose first alternative
# backtracks through every word in search of an "n't".
_TOKEN = re.compile(r"\w++(?!(?<=n)'t\b)|\w+(?=n't\b)|n't\b|'\w+|[^\w\s]")
_TAGS = re.compile(r"<[^>]{0,20}>")  # <br /> in IMDB

NEGATIONS = frozenset({
    "no", "not", "nor", "never", "n't", "none", "nobody", "nothing", "neither",
    "nowhere", "cannot", "without"})

# English function words (the usual NLTK-style list, without its negations).
STOPWORDS = frozenset("""
a about above after again against ain all am an and any are aren as at be because
been before being below between both but by can couldn d did didn do does doesn
doing don down during each few for from further had hadn has hasn have haven having
he her here hers herself him himself his how i if in into is isn it it's its itself
just ll m ma me mightn more most mustn my myself needn now o of off on once only or
other our ours ourselves out over own re s same shan she should shouldn so some such
t than that the their theirs them themselves then there these they this those
through to too under until up ve very was wasn we were weren what when where which
while who whom why will with won wouldn y you your yours yourself yourselves 's 're
've 'd 'll 'm
""".split()) | NEGATIONS
_DROPPED_WITH_NEGATIONS_KEPT = STOPWORDS - NEGATIONS


@dataclasses.dataclass(frozen=True)
class Tokenizer:
  """Splits text into tokens; options are the config's text fields."""
  lowercase: bool = True
  remove_stopwords: bool = False
  keep_negations: bool = True
  max_len: int = 0  # 0: no truncation
  stem: bool = False  # Snowball English stemmer, after stop-word removal

  @classmethod
  def from_config(cls, config) -> "Tokenizer":
    return cls(config.lowercase, config.remove_stopwords, config.keep_negations,
               config.max_len, bool(config.get("stem", False)))

  def __call__(self, text: str) -> list:
    if not isinstance(text, str):
      raise DataError(f"tokenizer: expected a text (str), got {type(text).__name__} "
                      f"{repr(text)[:60]}")
    text = _TAGS.sub(" ", text)
    if self.lowercase:
      text = text.lower()
    tokens = _TOKEN.findall(text)
    if self.remove_stopwords:  # NEGATIONS is a subset of STOPWORDS
      dropped = _DROPPED_WITH_NEGATIONS_KEPT if self.keep_negations else STOPWORDS
      tokens = [t for t, low in zip(tokens, map(str.lower, tokens)) if low not in dropped]
    if self.stem:
      tokens = _stemmer().stemWords(tokens)
    if self.max_len:
      tokens = tokens[: self.max_len]
    return tokens


@functools.cache
def _stemmer():
  import snowballstemmer  # pure Python, a core dependency
  return snowballstemmer.stemmer("english")


def numbered(tokenizer: Tokenizer, texts: list, seen=None) -> tuple:
  """Tokenises `texts`, each token as its number in `seen` (a dict that gives a word not
  yet in it the next number: words numbered in the order first seen; a fresh one if
  None). Returns (seen, ids, lengths): ids array('i'), text i's after those of texts
  0..i-1; lengths array('q'), the token counts. The token strings are not kept."""
  if seen is None:
    seen = collections.defaultdict(itertools.count().__next__)
  get = seen.__getitem__
  ids, lengths = array.array("i"), array.array("q")
  for text in texts:
    tokens = tokenizer(text)
    lengths.append(len(tokens))
    ids.extend(map(get, tokens))
  return seen, ids, lengths

