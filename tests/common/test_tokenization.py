"""Tokenizer: vocabulary building, encode/decode, JSON files, and the Keras layer against `encode`."""

import json
import random
import unicodedata

import keras
import numpy as np
import pytest
import tensorflow as tf

from common import tokenization
from common.errors import UserError
from common.tokenization import BOS_ID, EOS_ID, PAD_ID, SPECIALS, UNK_ID, Tokenizer, TokenizerLayer

TEXTS = [
    "Don't panic! The café's naïve crème brûlée costs 3.14€ (or £2).",
    "L’homme a dit: «Bonjour» — ¿qué tal? ¡Hola!",
    "Emoji 😀👍🏽 and flags 🇫🇷; tabs\tand\nnewlines.",
    "हिन्दी और العربية والكلمات, ΟΔΟΣ Σοφία, İstanbul Straße",
    "snake_case x2 ½ 42nd rock'n'roll  ",
]
# Tricky strings for the layer: unknown characters and words, empty and whitespace-only texts,
# non-ASCII whitespace (no-break space, ideographic space, line separator), a leading apostrophe.
PROBES = TEXTS + [
    "",
    "   ",
    "zebra ☃ unknown‽ words",
    "a\u00a0b\u3000c\u2028d\u0085e",
    "'quoted' \"double\" can't’s",
    "ÉCOLE À L'ÉTÉ ΣΟΦΟΣ",
    "x" * 50,
]


@pytest.fixture(params=["char", "word"])
def level(request):
    return request.param


def test_special_token_ids():
    tok = Tokenizer.build(["abc"], level="char")
    assert SPECIALS == ("<pad>", "<unk>", "<bos>", "<eos>")
    assert (
        [tok.token_to_id(t) for t in SPECIALS] == [PAD_ID, UNK_ID, BOS_ID, EOS_ID] == [0, 1, 2, 3]
    )
    assert tok.vocab[:4] == list(SPECIALS)
    assert tok.encode("ab", add_bos=True, add_eos=True) == [
        2,
        tok.token_to_id("a"),
        tok.token_to_id("b"),
        3,
    ]


def test_frequency_order_ties_by_token_and_min_freq():
    texts = ["b a c b a b", "d c e"]  # b:3, a:2, c:2, d:1, e:1
    tok = Tokenizer.build(texts, level="word")
    assert tok.vocab[4:] == ["b", "a", "c", "d", "e"]
    assert Tokenizer.build(texts, level="word", min_freq=2).vocab[4:] == ["b", "a", "c"]
    assert Tokenizer.build(texts, level="word", max_size=6).vocab == [*SPECIALS, "b", "a"]
    assert Tokenizer.build(texts, level="word", max_size=6, min_freq=3).vocab == [*SPECIALS, "b"]


def test_build_is_deterministic_whatever_the_text_order():
    a = Tokenizer.build(TEXTS, level="word", max_size=30)
    b = Tokenizer.build(list(reversed(TEXTS)), level="word", max_size=30)
    c = Tokenizer.build(iter(TEXTS), level="word", max_size=30)  # a one-shot iterable is fine
    assert a.vocab == b.vocab == c.vocab
    assert a.vocab_size == 30


@pytest.mark.parametrize(
    "kwargs",
    [{"level": "bpe"}, {"max_size": 4}, {"min_freq": 0}],
)
def test_build_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        Tokenizer.build(TEXTS, **kwargs)


def test_build_rejects_a_single_string():
    with pytest.raises(TypeError, match="single string"):
        Tokenizer.build("abc")


def test_char_round_trip_unicode():
    tok = Tokenizer.build(TEXTS, level="char")
    for text in TEXTS:
        assert tok.decode(tok.encode(text, add_bos=True, add_eos=True)) == text
    # Emoji with a skin-tone modifier are two code points, each a token.
    assert tok.tokens("👍🏽") == ["👍", "🏽"]


def test_nfc_normalisation():
    tok = Tokenizer.build(["café"], level="char")
    decomposed = unicodedata.normalize("NFD", "café")
    assert len(decomposed) == 5
    assert tok.encode(decomposed) == tok.encode("café")
    assert UNK_ID not in tok.encode(decomposed)


def test_word_split_rule():
    tok = Tokenizer.build([], level="word")
    assert tok.tokens("Don't stop, l’homme! rock'n'roll 3.14 😀👍 _id_ हिन्दी") == [
        "Don't", "stop", ",", "l’homme", "!", "rock'n", "'", "roll", "3", ".", "14",
        "😀", "👍", "_id_", "हिन्दी",
    ]  # fmt: skip
    assert tok.tokens(" a\u00a0b\u3000c\n") == ["a", "b", "c"]


def test_word_round_trip_and_spacing_rule():
    tok = Tokenizer.build(TEXTS, level="word")
    for text in TEXTS:
        ids = tok.encode(text)
        assert UNK_ID not in ids
        decoded = tok.decode(ids)
        assert tok.tokens(decoded) == tok.tokens(text)
    assert (
        tok.decode(tok.encode("Don't panic! (or 3.14).")) == "Don't panic! (or 3. 14)."
    )  # digits split at the dot
    assert tok.decode(tok.encode("¿qué tal? ¡Hola!")) == "¿qué tal? ¡Hola!"


def test_lowercase():
    tok = Tokenizer.build(["Hello HELLO hello ΣΟΦΟΣ"], level="word", lowercase=True)
    assert tok.vocab[4:] == ["hello", "σοφος"]  # final sigma
    assert tok.encode("HeLLo") == [tok.token_to_id("hello")]
    assert Tokenizer.build(["Hello hello"], level="word").vocab[4:] == ["Hello", "hello"]


def test_unknown_tokens_become_unk(level):
    tok = Tokenizer.build(["abc abc"], level=level)
    ids = tok.encode("abc zz ☃")
    assert ids[0] == tok.token_to_id("abc" if level == "word" else "a")
    assert ids.count(UNK_ID) == (2 if level == "word" else 3)
    assert tok.token_to_id("never seen") == UNK_ID
    assert "<unk>" in tok.decode(ids)


def test_decode_skips_padding_and_markers():
    tok = Tokenizer.build(["ab"], level="char")
    ids = [BOS_ID, tok.token_to_id("a"), tok.token_to_id("b"), EOS_ID, PAD_ID, PAD_ID]
    assert tok.decode(ids) == "ab"
    assert tok.decode(np.array(ids)) == "ab"
    assert tok.decode(ids, skip_special=False) == "<bos>ab<eos><pad><pad>"
    with pytest.raises(ValueError, match="id"):
        tok.decode([tok.vocab_size])


def test_encode_batch_pads_and_truncates():
    tok = Tokenizer.build(["abcd"], level="char")
    a, b, c, d = (tok.token_to_id(ch) for ch in "abcd")
    batch = tok.encode_batch(["ab", "abcd", ""], add_eos=True)
    assert batch.dtype == np.int32
    np.testing.assert_array_equal(batch, [[a, b, 3, 0, 0], [a, b, c, d, 3], [3, 0, 0, 0, 0]])
    np.testing.assert_array_equal(
        tok.encode_batch(["abcd", "a"], add_bos=True, max_length=3), [[2, a, b], [2, a, 0]]
    )
    assert tok.encode_batch([]).shape == (0, 0)


def test_json_round_trip(tmp_path, level):
    tok = Tokenizer.build(TEXTS, level=level, lowercase=True, max_size=40)
    path = tmp_path / "tokenizer.json"
    tok.save(path)
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind
    loaded = Tokenizer.load(path)
    assert loaded == tok
    assert (loaded.level, loaded.lowercase, loaded.vocab) == (level, True, tok.vocab)
    assert json.loads(path.read_text(encoding="utf-8"))["vocab"] == tok.vocab
    for text in TEXTS:
        assert loaded.encode(text) == tok.encode(text)


@pytest.mark.parametrize(
    "content",
    [
        '{"format": "common.tokenization.Tokenizer", "vocab": [',  # truncated
        "[1, 2, 3]",
        '{"format": "something else"}',
        '{"format": "common.tokenization.Tokenizer", "version": 99}',
        '{"format": "common.tokenization.Tokenizer", "version": 1, "level": "char", "lowercase": false,'
        ' "vocab": ["a", "b"]}',
        '{"format": "common.tokenization.Tokenizer", "version": 1, "level": "byte", "lowercase": false,'
        ' "vocab": ["<pad>", "<unk>", "<bos>", "<eos>"]}',
        '{"format": "common.tokenization.Tokenizer", "version": 1, "level": "char", "lowercase": false,'
        ' "vocab": ["<pad>", "<unk>", "<bos>", "<eos>", "a", "a"]}',
    ],
)
def test_load_bad_file_raises_user_error_naming_it(tmp_path, content):
    path = tmp_path / "tok.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UserError, match="tok.json"):
        Tokenizer.load(path)


def test_load_missing_or_binary_file(tmp_path):
    with pytest.raises(UserError, match="missing.json"):
        Tokenizer.load(tmp_path / "missing.json")
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(UserError, match="bin.json"):
        Tokenizer.load(tmp_path / "bin.json")


def test_word_rule_is_the_same_in_python_and_tensorflow_on_every_code_point():
    """Both spellings of the word rule split every assigned code point (in context) the same way."""
    rng = random.Random(0)
    assigned, other = [], []  # other: unassigned and private use (surrogates cannot be encoded)
    for cp in range(1, 0x110000):
        category = unicodedata.category(chr(cp))
        if category not in ("Cn", "Co", "Cs"):
            assigned.append(cp)
        elif category != "Cs":
            other.append(cp)
    code_points = assigned + rng.sample(other, 10_000)
    rng.shuffle(code_points)
    glue = [" ", "'", "’", "a", "1", "\u00a0", "\u0301", "😀"]
    chars = [rng.choice(glue) + chr(cp) if rng.random() < 0.3 else chr(cp) for cp in code_points]
    texts = [
        unicodedata.normalize("NFC", "".join(chars[i : i + 4000]))
        for i in range(0, len(chars), 4000)
    ]
    in_tf = tokenization._tf_tokens(tf.constant(texts), "word", lowercase=False).to_list()
    for text, tf_tokens in zip(texts, in_tf, strict=True):
        assert [t.decode() for t in tf_tokens] == tokenization._python_tokens(text, "word", False)


def test_word_characters_are_letters_marks_numbers_and_connectors():
    tok = Tokenizer.build([], level="word")
    # Lu Ll Mn (a combining mark NFC cannot compose) Mc Nd Nl No Pc, in one word each.
    for word in ["Éa", "q\u0301", "हिन्दी", "x9", "Ⅻb", "①②", "a_b‿c", "日本語"]:
        assert tok.tokens(f" {word} ") == [word]
    # Symbols, punctuation and emoji stand alone; all Unicode whitespace separates.
    assert tok.tokens("a€b—c😀d") == ["a", "€", "b", "—", "c", "😀", "d"]
    assert tok.tokens("a\u2003b\u2028c\x1fd\u3000e") == ["a", "b", "c", "d", "e"]
    assert tok.tokens("a\u200bb") == ["a", "\u200b", "b"]  # a zero-width space is not whitespace


@pytest.mark.parametrize("lowercase", [False, True])
def test_keras_layer_equals_encode(level, lowercase):
    tok = Tokenizer.build(TEXTS, level=level, lowercase=lowercase)
    layer = tok.keras_layer()
    got = np.asarray(layer(tf.constant(PROBES)))
    np.testing.assert_array_equal(got, tok.encode_batch(PROBES))
    assert UNK_ID in got  # the probes do contain unknown tokens
    # [batch, 1] input, markers and a fixed length.
    fixed = tok.keras_layer(sequence_length=12, add_bos=True, add_eos=True)
    got = np.asarray(fixed(tf.constant(PROBES)[:, None]))
    np.testing.assert_array_equal(
        got, tok.encode_batch(PROBES, add_bos=True, add_eos=True, max_length=12)
    )


def test_keras_layer_in_tf_data():
    tok = Tokenizer.build(TEXTS, level="word")
    ds = tf.data.Dataset.from_tensor_slices(PROBES).batch(4).map(tok.keras_layer(sequence_length=8))
    got = np.concatenate([b.numpy() for b in ds])
    np.testing.assert_array_equal(got, tok.encode_batch(PROBES, max_length=8))


def _model(tok):
    strings = keras.Input(shape=(), dtype="string", name="text")
    ids = tok.keras_layer(name="tokenize")(strings)
    x = keras.layers.Embedding(tok.vocab_size, 4, mask_zero=True)(ids)
    x = keras.layers.GlobalAveragePooling1D()(x)
    return keras.Model(strings, [ids, keras.layers.Dense(2)(x)])


def test_layer_config_round_trip():
    layer = Tokenizer.build(TEXTS, level="word", lowercase=True).keras_layer(7, add_eos=True)
    clone = TokenizerLayer.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    np.testing.assert_array_equal(clone(tf.constant(PROBES)), layer(tf.constant(PROBES)))


def test_keras_model_save_load_same_ids(tmp_path):
    tok = Tokenizer.build(TEXTS, level="word", lowercase=True)
    model = _model(tok)
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    inputs = tf.constant(PROBES)
    ids, logits = reloaded(inputs)
    np.testing.assert_array_equal(ids, tok.encode_batch(PROBES))
    np.testing.assert_allclose(logits, model(inputs)[1], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("level", ["word", "char"])
def test_tf_decode_equals_decode_batch(level):
    import tensorflow as tf

    texts = [
        "Hello, world! (This is) a «test» — isn't it? ¿Qué? 100% [ok] {x}.",
        "( ( x . . ) ) “quoted” ‘single’ end…",
    ]
    tok = Tokenizer.build(texts, level=level)
    ids = tok.encode_batch([*texts, "zzz unknown"], max_length=80, add_bos=True, add_eos=True)
    decoded = [t.decode() for t in tok.tf_decode(tf.constant(ids)).numpy()]
    assert decoded == tok.decode_batch(ids)
    assert decoded[0] == texts[0] and "<unk>" in decoded[2]


# ----------------------------------------------------------------------------- subwords

SENTENCES = [
    "Two young, White males are outside near many bushes.",
    "Several men in hard hats are operating a giant pulley system.",
    "A little girl climbing into a wooden playhouse.",
    "A man in a blue shirt is standing on a ladder cleaning windows.",
    "Two men are at the stove preparing food.",
    "Ein kleines Mädchen klettert in ein Spielhaus aus Holz.",
] * 5


@pytest.fixture(scope="module")
def subwords():
    return tokenization.SubwordTokenizer.build(SENTENCES, max_size=400)


def test_subwords_round_trip_keep_case_and_spell_unseen_characters_as_bytes(subwords):
    assert subwords.vocab_size <= 400
    assert [subwords.id_to_token(i) for i in range(4)] == list(SPECIALS)
    for text in [*SENTENCES[:6], "Ünseen wörds ☃ and 😀, Çok güzel!", "  extra   spaces  "]:
        ids = subwords.encode(text)
        assert UNK_ID not in ids  # byte fallback: nothing is unknown
        assert len(subwords.tokens(text)) == len(ids)
        assert subwords.decode(ids) == " ".join(text.split())  # nmt_nfkc: runs of spaces
    assert subwords.decode(subwords.encode("A man.", add_bos=True, add_eos=True)) == "A man."
    ids = subwords.encode("A man.", add_eos=True)
    assert ids[-1] == EOS_ID and subwords.decode([*ids, PAD_ID, PAD_ID]) == "A man."
    # Pieces are learned: the training sentences take fewer pieces than characters.
    assert len(subwords.tokens(SENTENCES[4])) < 0.75 * len(SENTENCES[4])


def test_subwords_save_load_and_the_graph_ops_give_the_same_ids(subwords, tmp_path):
    path = tmp_path / "tok.json"
    subwords.save(path)
    loaded = tokenization.load_tokenizer(path)
    assert loaded == subwords and isinstance(loaded, tokenization.SubwordTokenizer)
    Tokenizer.build(["abc"]).save(tmp_path / "char.json")
    assert isinstance(tokenization.load_tokenizer(tmp_path / "char.json"), Tokenizer)
    texts = ["Two men are at the stove.", "", "Ünseen ☃ Mädchen", "A girl"]
    ids = loaded.keras_layer()(tf.constant(texts)).numpy()
    for row, text in zip(ids, texts, strict=True):
        expected = subwords.encode(text)
        assert row[: len(expected)].tolist() == expected and not row[len(expected) :].any()
    assert [t.decode() for t in subwords.tf_decode(tf.constant(ids)).numpy()] == [
        subwords.decode(row) for row in ids
    ]
    # Same texts, same model: training is deterministic.
    assert tokenization.SubwordTokenizer.build(SENTENCES, max_size=400) == subwords


def test_subwords_lowercase_and_bad_input():
    lower = tokenization.SubwordTokenizer.build(SENTENCES, max_size=400, lowercase=True)
    assert lower.decode(lower.encode("Two MEN")) == "two men"
    layer_ids = lower.keras_layer()(tf.constant(["Two MEN"])).numpy()[0].tolist()
    assert layer_ids == lower.encode("Two MEN")
    with pytest.raises(ValueError, match="max_size must be at least"):
        tokenization.SubwordTokenizer.build(SENTENCES, max_size=100)
    with pytest.raises(ValueError, match="no text"):
        tokenization.SubwordTokenizer.build(["", "  "], max_size=400)


def test_corrupt_subword_file_is_one_line_error(tmp_path):
    path = tmp_path / "tok.json"
    payload = {"format": tokenization.SUBWORD_FORMAT, "version": 1, "lowercase": False}
    for model in ("not base64!", "AAAA"):
        path.write_text(json.dumps({**payload, "sentencepiece_model": model}))
        with pytest.raises(UserError, match=f"{path}: corrupt tokenizer file"):
            tokenization.load_tokenizer(path)
