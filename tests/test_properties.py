"""Property-based tests (hypothesis): arbitrary bytes and unicode never crash the
readers, the tokeniser or the config parser with anything but the project's own
error types, DataError / ConfigError, whose message names the file and line
(readers), the file (run configs) or the key (overrides).

The examples are derandomised (the same ones on every run, so CI cannot flake)
and few, to keep this file within a few seconds. To search harder:

    HYPOTHESIS_PROFILE=explore python -m pytest tests/test_properties.py
"""

import csv
import gzip
import json
import os
import re

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from textclf_jax import config as config_lib  # noqa: E402
from textclf_jax.families import validate as validate_lib  # noqa: E402
from textclf_jax.config import ConfigError  # noqa: E402
from textclf_jax.errors import DataError  # noqa: E402
from textclf_jax.data.readers import Split, read_file  # noqa: E402
from textclf_jax.text.tokenize import Tokenizer  # noqa: E402

settings.register_profile("ci", max_examples=120, deadline=None, derandomize=True,
                          database=None, print_blob=True,
                          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                 HealthCheck.too_slow])
settings.register_profile("explore", max_examples=5000, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                 HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# --- strategies -----------------------------------------------------------------

# Characters that matter to the formats, plus anything unicode has (no surrogates:
# they cannot be written as UTF-8, so no file holds them).
SPECIAL = ['"', "'", ",", "\t", "\n", "\r", "\r\n", " ", "|", "{", "}", "[", "]", ":",
           "\\", "\x00", "\ufeff", "\u2028", "\x85", "<br />", "n't", "'s"]
pieces = st.one_of(st.sampled_from(SPECIAL), st.text(max_size=6),
                   st.sampled_from(["text", "label", "labels", "fold", "1", "-3", "1e309",
                                    "NaN", "Infinity", "true", "null"]))
texty = st.lists(pieces, max_size=12).map("".join)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=3),
    max_leaves=6)
json_rows = st.dictionaries(st.sampled_from(["text", "label", "labels", "fold", "other"]),
                            json_values, max_size=4)


@st.composite
def jsonl_content(draw):
  lines = draw(st.lists(st.one_of(json_rows.map(lambda r: json.dumps(r, ensure_ascii=False)),
                                  texty), max_size=6))
  return draw(st.sampled_from(["\n", "\r\n"])).join(lines).encode("utf-8")


@st.composite
def delimited_content(draw):
  header = draw(st.sampled_from(["text,label", "text,labels", "text,label,fold", "label,text",
                                 "text\tlabel", "text", ""]))
  rows = draw(st.lists(texty, max_size=6))
  return "\n".join([header] + rows).encode("utf-8")


@st.composite
def damaged(draw, content):
  """Valid-looking content with bytes cut out or invalid bytes put in."""
  data = draw(content)
  if data and draw(st.booleans()):
    i = draw(st.integers(0, len(data) - 1))
    data = data[:i] + draw(st.binary(min_size=1, max_size=3)) + data[i + 1:]
  return data


file_content = st.one_of(st.binary(max_size=200), damaged(jsonl_content()),
                         damaged(delimited_content()))
SUFFIXES = [".jsonl", ".json", ".csv", ".tsv", ".jsonl.gz", ".csv.gz"]


def _write(directory, suffix, data: bytes, compress: bool) -> str:
  path = os.path.join(directory, "data" + suffix)
  if suffix.endswith(".gz") and compress:
    data = gzip.compress(data, mtime=0)
  with open(path, "wb") as f:
    f.write(data)
  return path


FILE_LEVEL = ("file is empty", "no examples found", "not a valid gzip file")


def _check_data_error(error: DataError, path: str, data: bytes):
  """The message starts with the file's path and, for an error in a row, the line."""
  message = str(error)
  assert message.startswith(path + ":"), message
  match = re.match(re.escape(path) + r":(\d+): ", message)
  if match is None:
    assert any(m in message for m in FILE_LEVEL), f"no line number in {message!r}"
    return
  lines = data.count(b"\n") + data.count(b"\r") + 1  # csv also ends lines at a lone \r
  assert 1 <= int(match.group(1)) <= lines, (message, lines)


def _check_split(split: Split):
  assert len(split.texts) == len(split.labels) > 0
  assert all(isinstance(t, str) for t in split.texts)
  for label in split.labels:
    assert isinstance(label, str) or (isinstance(label, list)
                                      and all(isinstance(x, str) for x in label))
  if split.folds is not None:
    assert split.folds.shape == (len(split),) and split.folds.dtype.kind == "i"


# --- readers --------------------------------------------------------------------


@given(data=file_content, suffix=st.sampled_from(SUFFIXES), compress=st.booleans())
@example(data=b'{"text": "a", "label": "b", "fold": ' + b"1" * 5000 + b"}", suffix=".jsonl",
         compress=False)
@example(data=b'{"text": "a", "label": "b", "fold": Infinity}', suffix=".jsonl",
         compress=False)
@example(data=b"[" * 100_000, suffix=".jsonl", compress=False)
@example(data=b"\x1f\x8b\x08\x00garbage", suffix=".csv.gz", compress=False)
@example(data=b'text,label\n"open,a\nb,c\n', suffix=".csv", compress=False)
@example(data=b"\n\x0c\ntext,label\n", suffix=".tsv", compress=False)
def test_readers_raise_only_data_errors_naming_file_and_line(tmp_path, data, suffix, compress):
  path = _write(str(tmp_path), suffix, data, compress)
  try:
    split = read_file(path)
  except DataError as e:
    _check_data_error(e, path, data)  # (the data before compression)
  else:
    _check_split(split)


labels = st.text(min_size=1, max_size=8).filter(lambda s: s.strip())
rows = st.lists(st.tuples(st.text(max_size=30), labels), min_size=1, max_size=8)


@given(rows=rows)
@example(rows=[("a\rb\r\nc\x00 \u2028 \"q\" \t", "x,y")])
def test_any_unicode_text_and_label_round_trips_through_every_format(tmp_path, rows):
  texts, names = [t for t, _ in rows], [n for _, n in rows]
  with open(tmp_path / "a.jsonl", "w", encoding="utf-8") as f:
    f.writelines(json.dumps({"text": t, "label": n}, ensure_ascii=False) + "\n" for t, n in rows)
  for name, delimiter in (("a.csv", ","), ("a.tsv", "\t")):
    with open(tmp_path / name, "w", encoding="utf-8", newline="") as f:
      writer = csv.writer(f, delimiter=delimiter)
      writer.writerow(["text", "label"])
      writer.writerows(rows)
  with open(tmp_path / "a.jsonl", "rb") as f:
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(f.read()))
  for name in ("a.jsonl", "a.jsonl.gz", "a.csv", "a.tsv"):
    split = read_file(str(tmp_path / name))
    # csv skips a row whose fields are all blank; a label is never blank here.
    assert (split.texts, split.labels) == (texts, names), name


plain = st.text(st.characters(blacklist_categories=("Cs", "Zl", "Zp", "Cc")), min_size=1,
               max_size=12).filter(lambda s: s.strip() and not set(s) & set('",\t|'))


@given(rows=st.lists(st.tuples(plain, plain), min_size=1, max_size=30), data=st.data())
def test_csv_error_names_the_line_of_the_unclosed_quote(tmp_path, rows, data):
  """One row opens a quote it never closes: however many lines it swallows,
  the error names that row's line."""
  bad = data.draw(st.integers(0, len(rows) - 1))
  lines = ["text,label"] + [f"{t},{n}" for t, n in rows]
  lines[bad + 1] = '"' + lines[bad + 1]
  path = tmp_path / "bad.csv"
  path.write_text("\n".join(lines) + "\n", encoding="utf-8")
  with pytest.raises(DataError) as error:
    read_file(str(path))
  assert str(error.value).startswith(f"{path}:{bad + 2}: "), str(error.value)


# --- tokeniser ------------------------------------------------------------------


@given(text=st.one_of(st.text(), texty), lowercase=st.booleans(), stopwords=st.booleans(),
       negations=st.booleans(), stem=st.booleans(), max_len=st.integers(0, 6))
@example(text="Don't <br />stop, it's ΣΊΣΥΦΟΣ İ ß ﬃ!", lowercase=True, stopwords=True,
         negations=True, stem=True, max_len=0)
def test_tokenizer_takes_any_unicode(text, lowercase, stopwords, negations, stem, max_len):
  tokens = Tokenizer(lowercase, stopwords, negations, max_len, stem)(text)
  assert isinstance(tokens, list) and all(isinstance(t, str) and t for t in tokens)
  assert not any(ch.isspace() for t in tokens for ch in t)
  if max_len:
    assert len(tokens) <= max_len


@given(value=st.one_of(st.binary(), st.none(), st.integers(), st.lists(st.text())))
def test_tokenizer_rejects_non_text_with_a_data_error(value):
  with pytest.raises(DataError, match="tokenizer: expected a text"):
    Tokenizer()(value)


# --- config parser ----------------------------------------------------------------
#
# Crashes hypothesis found in config.py, fixed: each must now be a ConfigError
# that names the key (overrides) or the file (from_json).

KNOWN_OVERRIDE_CRASHES = [
    "seed.x=1",            # was TypeError: argument of type 'int' is not iterable
    "dataset.x=1",         # was AttributeError: 'str' object has no attribute 'keys'
    "dataset.bbc=1",       # was AttributeError: 'str' object has no attribute 'unlocked'
    "bucket_lengths=" + "-" * 100_000 + "1",  # was MemoryError from ast.literal_eval
    "bucket_lengths=" + "a." * 50_000 + "b",  # was RecursionError from ast.literal_eval
]
KNOWN_FROM_JSON_CRASHES = [
    b"\xff",                         # was UnicodeDecodeError
    b"[1]",                          # was TypeError: 'list' object is not a mapping
    b"null",                         # was TypeError: argument of type 'NoneType' is not iterable
    b'{"seed": ' + b"1" * 5000 + b"}",  # was ValueError: Exceeds the limit (4300 digits)
    b"[" * 100_000,                  # was RecursionError
    b'{"a.b": 1}',                   # was ValueError: ConfigDict does not accept dots
]


def _known_config_crash(error: BaseException, key: str = "") -> bool:
  """None are left: every error of the config parser is a ConfigError."""
  del error, key
  return False


def _flat_keys(config, prefix=""):
  for key, value in config.items():
    if hasattr(value, "items"):
      yield from _flat_keys(value, f"{prefix}{key}.")
    else:
      yield prefix + key


PRESET_KEYS = sorted({k for p in config_lib.PRESETS
                      for k in _flat_keys(config_lib.load_preset(p))})


@given(preset=st.sampled_from(config_lib.PRESETS),
       key=st.one_of(st.sampled_from(PRESET_KEYS),
                     st.text(max_size=12).filter(lambda k: "=" not in k),
                     st.builds("{}.{}".format, st.sampled_from(PRESET_KEYS),
                               st.text(max_size=4).filter(lambda k: "=" not in k))),
       value=st.one_of(st.text(max_size=20), texty,
                       st.sampled_from(["1", "0", "-1", "1e9", "nan", "inf", "true", "()",
                                        "(1,)", "[1, 2]", "{[]}", "3,4,5", "'a'", ""])))
@example(preset="cnn", key="bucket_lengths", value="{[]}")
@example(preset="cnn", key="seed", value="1" * 5000)
def test_overrides_raise_only_config_errors_naming_the_key(preset, key, value):
  config = config_lib.load_preset(preset)
  before = {k: config[k] for k in PRESET_KEYS if k in config and "." not in k}
  try:
    config = validate_lib.validate(config_lib.apply_overrides(config, [f"{key}={value}"]))
  except ConfigError as e:
    assert key in str(e), (key, str(e))
  except Exception as e:  # noqa: BLE001
    if not _known_config_crash(e, key):
      raise
  else:
    leaf = config[key]  # the override took, with the field's type
    if key in before and not isinstance(before[key], float):
      assert type(leaf) is type(before[key]) or isinstance(before[key], (tuple, list))


@given(current=st.sampled_from([True, 7, 0.5, (1, 2), "s"]),
       text=st.one_of(st.text(max_size=20), texty))
@example(current=(1, 2), text="{[]}")
def test_parse_value_raises_only_config_errors_naming_the_key(current, text):
  try:
    value = config_lib._parse_value("some_key", text, current)
  except ConfigError as e:
    assert "some_key" in str(e)
  except Exception as e:  # noqa: BLE001
    if not _known_config_crash(e):
      raise
  else:
    assert isinstance(value, tuple if isinstance(current, tuple) else type(current))


@given(data=st.one_of(st.binary(max_size=100),
                      st.dictionaries(st.sampled_from(PRESET_KEYS + ["x"]), json_values,
                                      max_size=4).map(lambda d: json.dumps(d).encode())))
def test_from_json_raises_only_config_errors_naming_the_file(tmp_path, data):
  path = tmp_path / "config.json"
  path.write_bytes(data)
  try:
    config_lib.from_json(str(path))
  except ConfigError as e:
    assert str(path) in str(e)
  except Exception as e:  # noqa: BLE001
    if not _known_config_crash(e):
      raise


@pytest.mark.parametrize("override", KNOWN_OVERRIDE_CRASHES, ids=lambda o: o[:20])
def test_known_override_crash_is_a_config_error(override):
  with pytest.raises(ConfigError, match=re.escape(override.split("=")[0])):
    validate_lib.validate(config_lib.apply_overrides(config_lib.load_preset("cnn"), [override]))


@pytest.mark.parametrize("content", KNOWN_FROM_JSON_CRASHES, ids=lambda c: repr(c[:12]))
def test_known_from_json_crash_is_a_config_error(tmp_path, content):
  path = tmp_path / "config.json"
  path.write_bytes(content)
  with pytest.raises(ConfigError, match=re.escape(str(path))):
    config_lib.from_json(str(path))


def test_a_list_value_that_is_no_literal_is_split_on_commas():
  """Not a Python literal: the comma-separated strings (validation then names the key)."""
  assert config_lib._parse_value("some_key", "{[]}", (1, 2)) == ("{[]}",)
  with pytest.raises(ConfigError, match="bucket_lengths"):
    validate_lib.validate(config_lib.apply_overrides(config_lib.load_preset("cnn"),
                                                     ["bucket_lengths={[]}"]))


def test_known_from_json_crash_on_a_directory_is_a_config_error(tmp_path):
  with pytest.raises(ConfigError, match=re.escape(str(tmp_path))):
    config_lib.from_json(str(tmp_path))  # IsADirectoryError
