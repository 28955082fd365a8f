import pytest
import torch

from hardprompt.apps.common import build_vocabulary
from hardprompt.errors import HardpromptError


def test_special_and_unused_tokens_are_never_allowed(tiny_clip, minilm):
    clip_vocab = build_vocabulary(tiny_clip)
    allowed = set(clip_vocab.allowed_ids.tolist())
    assert tiny_clip.bos_id not in allowed and tiny_clip.eos_id not in allowed
    bert_vocab = build_vocabulary(minilm)
    allowed = set(bert_vocab.allowed_ids.tolist())
    tokenizer = minilm.tokenizer
    assert not allowed & set(tokenizer.all_special_ids)
    unused = tokenizer.convert_tokens_to_ids(["[unused0]", "[unused99]"])
    assert not allowed & set(unused)
    assert len(allowed) > 20000  # the ordinary word pieces remain


def test_blocklist_excludes_every_token_containing_a_word_case_insensitively(tiny_clip):
    vocab = build_vocabulary(tiny_clip, blocklist=["Red", "cat"])
    texts = [vocab.token_texts[i].lower() for i in vocab.allowed_ids.tolist()]
    assert not any("red" in t or "cat" in t for t in texts)
    full = build_vocabulary(tiny_clip)
    removed = len(full) - len(vocab)
    assert removed > 50  # red, reddit, bored, cat, cats, education, ...


def test_bank_restricts_to_the_tokens_of_its_phrases(tiny_clip):
    phrases = ["oil painting", "trending on artstation", "by greg rutkowski"]
    vocab = build_vocabulary(tiny_clip, bank=phrases)
    expected = {i for p in phrases for i in tiny_clip.tokenize(p)}
    assert set(vocab.allowed_ids.tolist()) == expected


def test_ascii_only(minilm):
    vocab = build_vocabulary(minilm, ascii_only=True)
    assert all(vocab.token_texts[i].isascii() for i in vocab.allowed_ids.tolist())
    assert len(vocab) < len(build_vocabulary(minilm))


def test_rules_that_leave_no_token_are_an_error(tiny_clip):
    with pytest.raises(HardpromptError, match="leave no token"):
        build_vocabulary(tiny_clip, bank=["cat"], blocklist=["cat"])


def test_blocked_word_formed_across_tokens_is_removed_after_decoding(tiny_clip):
    vocab = build_vocabulary(tiny_clip, blocklist=["red"])
    tokenizer = tiny_clip.tokenizer
    ids = tokenizer.convert_tokens_to_ids(["a</w>", "re", "d</w>", "car</w>"])
    allowed = set(vocab.allowed_ids.tolist())
    assert all(i in allowed for i in ids)  # each token alone is fine ...
    assert "red" in vocab.decode(ids)  # ... but together they spell the blocked word
    repaired = vocab.make_acceptable(ids)
    text = vocab.decode(repaired)
    assert "red" not in text.lower() and vocab.accepts(text)
    assert len(repaired) == len(ids) - 1  # one token dropped, not the whole prompt


def test_decode_encode_round_trip_of_plain_words(tiny_clip):
    vocab = build_vocabulary(tiny_clip)
    ids = tiny_clip.tokenize("a watercolor painting of a fox")
    assert vocab.encode(vocab.decode(ids)) == ids
    assert torch.equal(vocab.allowed_ids, vocab.allowed_ids.unique())
