"""Normalisation, dedup (content hash, vectorised MinHash/LSH) and the chat/feedback adapters."""

from __future__ import annotations

import random

import numpy as np

from pipeline.data.dedup import MinHasher, candidate_pairs, content_hash, lsh_params, near_duplicates, shingle_hashes
from pipeline.data.normalize import normalize_text, normalize_turn_text, truncate
from pipeline.data.sources import chat_jsonl, feedback
from pipeline.data.sources.base import INVALID_KEY


def test_normalize_unicode_whitespace_controls() -> None:
    assert normalize_text("ｉｄｉｏｔ") == "idiot"  # NFKC folds full-width
    assert normalize_text("  a \t b\u00a0c  ") == "a b c"
    assert normalize_text("a\x00b\x07c\x1bd") == "abcd"
    assert normalize_text("line one  \r\n\r\n\r\n\r\nline two") == "line one\n\nline two"
    assert normalize_text("i\u200bdi\u200dot \u202eok\u00ad") == "idiot ok"
    assert normalize_text("family 👨\u200d👩\u200d👧") == "family 👨\u200d👩\u200d👧"  # emoji sequence intact
    assert normalize_text("\x00\x01 \t") == ""


def test_truncate_flags_and_is_fast_on_huge_text() -> None:
    text, cut, original = normalize_turn_text("word " * 2_000_000, 100)  # 10 MB
    assert cut and original == 10_000_000 and len(text) <= 100 and not text.endswith(" ")
    assert normalize_turn_text("short", 100) == ("short", False, 5)
    assert truncate("a" * 95 + " " + "b" * 10, 100) == "a" * 95  # no word cut in half
    assert truncate("x" * 200, 100) == "x" * 100


def test_content_hash_sees_roles_and_text_only() -> None:
    a = content_hash([("user", "hi"), ("assistant", "hello")])
    assert a == content_hash([("user", "hi"), ("assistant", "hello")])
    assert a != content_hash([("assistant", "hi"), ("user", "hello")])
    assert a != content_hash([("user", "hi"), ("assistant", "hello!")])


def _doc(rng: random.Random, n: int) -> str:
    return " ".join(f"w{rng.randrange(5000)}" for _ in range(n))


def test_minhash_estimates_jaccard_and_is_content_based() -> None:
    rng = random.Random(0)
    base = _doc(rng, 200).split()
    near = base[:190] + ["zz"] * 10  # ~0.9 of the shingles shared
    far = _doc(rng, 200)
    sig = MinHasher(64, 3).signatures([" ".join(base), " ".join(near), far])
    assert (sig[0] == sig[1]).mean() > 0.75
    assert (sig[0] == sig[2]).mean() < 0.1
    # the same document gets the same signature in another batch (content-based hashing)
    sig2 = MinHasher(64, 3).signatures([far, "x y z", " ".join(base)])
    assert (sig2[2] == sig[0]).all() and (sig2[0] == sig[2]).all()
    # case and punctuation do not make a different document
    s = MinHasher().signatures(["Hello, World! how are you", "hello world how are you"])
    assert (s[0] == s[1]).all()


def test_empty_and_short_documents() -> None:
    sh, off = shingle_hashes(["", "ok", "a b c d", "..."], 3)
    assert list(np.diff(off)) == [1, 1, 2, 1]
    sig = MinHasher().signatures(["...", "ok", "ok", "?!"])
    assert (sig[1] == sig[2]).all() and (sig[0] == sig[3]).all() and not (sig[0] == sig[1]).any()


def test_near_duplicates_lsh_and_side_mode() -> None:
    rng = random.Random(1)
    docs = [_doc(rng, rng.randrange(20, 120)) for _ in range(2000)]
    planted = []
    for i in range(0, 200, 10):
        words = docs[i].split()
        words[-1] = "changed"
        docs.append(" ".join(words))
        planted.append((i, len(docs) - 1))
    res = near_duplicates(docs, 0.8)
    found = set(map(tuple, res.pairs.tolist()))
    assert sum(p in found for p in planted) >= 0.9 * len(planted)
    assert len(found) <= len(planted) + 2  # random docs are not near each other
    side = np.zeros(len(docs), bool)
    side[:1000] = True
    cross = near_duplicates(docs, 0.8, side=side)
    assert all(side[i] != side[j] for i, j in cross.pairs.tolist())
    assert {p for p in planted if side[p[0]] != side[p[1]]} <= set(map(tuple, cross.pairs.tolist()))


def test_side_mode_expands_huge_buckets_exactly() -> None:
    sig = np.zeros((300, 8), np.uint32)  # all identical: one giant bucket
    side = np.arange(300) < 5
    pairs = candidate_pairs(sig, 2, 4, side=side)
    assert len(pairs) == 5 * 295
    assert lsh_params(0.85, 64)[0] * lsh_params(0.85, 64)[1] <= 64


def test_chat_jsonl_conversion() -> None:
    rec = chat_jsonl.convert(
        {
            "id": 7,
            "messages": [
                {"role": "system", "content": "be nice"},
                {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url"}]},
                {"role": "tool", "content": "{}"},
            ],
        },
        "f.jsonl",
        3,
    )
    assert rec["id"] == 7 and [t["role"] for t in rec["turns"]] == ["system", "user", "tool"]
    assert rec["turns"][1]["text"] == "hi" and rec["meta"]["labelled_turns"] == []
    full = chat_jsonl.convert(
        {"messages": [{"role": "user", "content": "x", "labels": ["abuse"]}], "category": "abuse"}, "f.jsonl", 4
    )
    assert "labelled_turns" not in full["meta"] and full["id"] == "line-4"
    bad = chat_jsonl.convert({"conversation": []}, "f.jsonl", 5)
    assert bad[INVALID_KEY]["field"] == "messages" and bad[INVALID_KEY]["line"] == 5


def test_feedback_conversion() -> None:
    rec = feedback.convert(
        {
            "received_at": "2024-01-01T00:00:00Z",
            "decision": "end",
            "reason": "persistent_abuse",
            "comment": "wrongly ended",
            "conversation": {
                "id": "c1",
                "turns": [{"role": "user", "text": "hi"}, {"role": "assistant", "text": "hello"}],
            },
        },
        "fb",
        2,
    )
    assert rec["id"] == "c1@2" and rec["category"] == "user_feedback"
    assert rec["meta"]["decision"] == "end" and rec["meta"]["labelled_turns"] == []
    assert feedback.convert({"decision": "end"}, "fb", 3)[INVALID_KEY]["field"] == "conversation"
