"""Exact and near-duplicate detection over whole conversations.

Exact: a content hash over the normalised (role, text) sequence, so re-exports of one conversation with another
id or different metadata collapse.

Near: MinHash over word shingles with LSH banding. Words are hashed straight from the UTF-8 bytes with prefix
sums (no Python object per word; content based, so results do not depend on which documents are in the batch),
shingle hashes are combined from word hashes with array arithmetic, and signatures come from rensa (Rust), fed
those hashes: datasketch's per-shingle Python update was 8x slower, rensa's own tokeniser 2x. Candidate pairs come from LSH bands (band
count chosen to balance false positives and negatives around the threshold) and are verified by the estimated
Jaccard (the fraction of agreeing signature slots; standard error about 0.045 at J = 0.85 with 64 slots).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

#: Buckets larger than this are not expanded into all pairs (see `candidate_pairs`).
MAX_BUCKET_WINDOW = 64


def content_hash(turns: Sequence[tuple[str, str]]) -> str:
    """Hash of what the model sees: roles and normalised texts, in order (not ids, labels or meta)."""
    h = hashlib.blake2b(digest_size=16)
    for role, text in turns:
        h.update(role.encode())
        h.update(b"\x1f")
        h.update(text.encode("utf-8", "surrogatepass"))
        h.update(b"\x1e")
    return h.hexdigest()


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: spreads combined word hashes over 64 bits (uint64 arithmetic wraps)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


_WORD_BYTES = np.zeros(256, bool)
for _c in b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_":
    _WORD_BYTES[_c] = True
_WORD_BYTES[0x80:] = True  # any byte of a multi-byte UTF-8 character counts as a letter
_P = 0x100000001B3
_P_INV = pow(_P, -1, 1 << 64)
_CHUNK_BYTES = 1 << 18
# odd multipliers that make a shingle hash depend on word order
_SHINGLE_MULT = (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93)


def _word_hashes(buf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(start byte of each word, 64-bit hash of each word) for a byte buffer, without Python-level loops.

    A word's polynomial hash sum(c_j * P**(e-1-j)) is read off prefix sums of c_j * P**-j (P is odd, so it has an
    inverse mod 2**64 and uint64 wrap-around is exact modular arithmetic). Done in chunks to bound memory.
    """
    isw = _WORD_BYTES[buf]
    edge = np.diff(isw.astype(np.int8), prepend=np.int8(0), append=np.int8(0))
    starts = np.flatnonzero(edge == 1)
    ends = np.flatnonzero(edge == -1)
    hashes = np.empty(len(starts), np.uint64)
    if not len(starts):
        return starts, hashes
    span = int(min(_CHUNK_BYTES, len(buf))) + int((ends - starts).max()) + 1
    pw = np.full(span, np.uint64(_P), np.uint64)
    pw[0] = 1
    pw = np.multiply.accumulate(pw)
    ipw = np.full(span, np.uint64(_P_INV), np.uint64)
    ipw[0] = 1
    ipw = np.multiply.accumulate(ipw)
    w = 0
    while w < len(starts):
        lo = int(starts[w])
        w_end = int(np.searchsorted(starts, lo + _CHUNK_BYTES, side="left"))
        w_end = max(w_end, w + 1)
        hi = int(ends[w_end - 1])
        c = buf[lo:hi].astype(np.uint64) + np.uint64(1)
        h = np.cumsum(c * ipw[: hi - lo], dtype=np.uint64)
        s = starts[w:w_end] - lo
        e = ends[w:w_end] - lo
        before = np.where(s > 0, h[np.maximum(s - 1, 0)], np.uint64(0))
        hashes[w:w_end] = (h[e - 1] - before) * pw[e - 1]
        w = w_end
    return starts, _mix64(hashes ^ np.uint64(0x9E3779B97F4A7C15))


def shingle_hashes(docs: Sequence[str], shingle_size: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(uint64 shingle hashes of all documents concatenated, start offsets of each document: len(docs) + 1).

    Words are runs of ASCII letters/digits/underscore or non-ASCII characters, compared case-insensitively.
    A document with fewer words than `shingle_size` gets one shingle of all its words; an empty one gets a
    single constant shingle (so every document has a signature).
    """
    n = len(docs)
    if n == 0:
        return np.zeros(0, np.uint64), np.zeros(1, np.int64)
    enc = [d.lower().encode("utf-8", "surrogatepass") for d in docs]
    doc_bytes = np.fromiter(map(len, enc), dtype=np.int64, count=n)
    doc_start_byte = np.zeros(n, np.int64)
    np.cumsum(doc_bytes[:-1] + 1, out=doc_start_byte[1:])
    buf = np.frombuffer(b" ".join(enc), dtype=np.uint8)
    wstart, wh = _word_hashes(buf)
    word_doc = np.searchsorted(doc_start_byte, wstart, side="right") - 1
    lengths = np.bincount(word_doc, minlength=n).astype(np.int64)
    starts = np.zeros(n, np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    ends = starts + lengths
    k = shingle_size
    n_sh = np.maximum(lengths - k + 1, 1)
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(n_sh, out=offsets[1:])
    total = int(offsets[-1])
    doc_of = np.repeat(np.arange(n), n_sh)
    pos = np.arange(total) - offsets[doc_of] + starts[doc_of]
    doc_end = ends[doc_of]
    acc = np.zeros(total, np.uint64)
    padded = np.concatenate([wh, np.zeros(k, np.uint64)])
    for j in range(k):
        idx = pos + j
        val = padded[np.minimum(idx, len(wh))]
        val[idx >= doc_end] = 0  # past the document's end (or an empty document): pad
        acc += val * np.uint64(_SHINGLE_MULT[j % len(_SHINGLE_MULT)] + 2 * j)
    return _mix64(acc), offsets


@dataclass(frozen=True)
class MinHasher:
    """MinHash signatures (`num_perm` permutations) of word shingles: our vectorised shingle hashing, then
    rensa's Rust R-MinHash. Slot agreement estimates Jaccard similarity."""

    num_perm: int = 64
    shingle_size: int = 3
    seed: int = 0

    def signatures(self, docs: Sequence[str]) -> np.ndarray:
        """uint32 [len(docs), num_perm] signatures."""
        sh, offsets = shingle_hashes(docs, self.shingle_size)
        return self.signatures_from_shingles(sh, offsets)

    def signatures_from_shingles(self, sh: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """rensa's R-MinHash over our shingle hashes (k permutations; docs/experiments/*minhash-libraries*:
        as fast as our one-permutation sketch was, and 3x less noisy on short conversations)."""
        import rensa

        if len(offsets) <= 1:
            return np.empty((0, self.num_perm), np.uint32)
        m = rensa.RMinHash.digest_matrix_from_flat_token_hashes(
            np.ascontiguousarray(sh, np.uint64), np.asarray(offsets, np.uint64), self.num_perm, self.seed
        )
        return np.asarray(m.to_rows(), np.uint32)


def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) minimising false positives + false negatives around `threshold` (as datasketch does)."""
    xs = np.linspace(0.0, 1.0, 201)
    best = (float("inf"), 1, num_perm)
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            p = 1.0 - (1.0 - xs**rows) ** bands
            fp = np.trapezoid(np.where(xs < threshold, p, 0.0), xs)
            fn = np.trapezoid(np.where(xs >= threshold, 1.0 - p, 0.0), xs)
            err = 0.5 * fp + 0.5 * fn
            if err < best[0]:
                best = (err, bands, rows)
    return best[1], best[2]


def candidate_pairs(sig: np.ndarray, bands: int, rows: int, side: np.ndarray | None = None) -> np.ndarray:
    """[m, 2] index pairs (i < j) sharing at least one LSH band.

    With `side` (bool per row), only pairs across sides are returned and buckets of any size are expanded
    exactly (the leakage check must not miss a pair). Without it, members of a bucket are paired with their
    next MAX_BUCKET_WINDOW neighbours and with the bucket's first member: clusters stay connected while a huge
    bucket of near-identical documents does not explode quadratically.
    """
    n = sig.shape[0]
    if n < 2:
        return np.zeros((0, 2), np.int64)
    rng = np.random.default_rng(7)
    mult = rng.integers(1, 2**63, size=rows, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    out: list[np.ndarray] = []
    for band in range(bands):
        block = sig[:, band * rows : (band + 1) * rows].astype(np.uint64)
        keys = _mix64((block * mult[None, :]).sum(axis=1, dtype=np.uint64) + np.uint64(band))
        order = np.argsort(keys, kind="stable")
        ks = keys[order]
        new_group = np.concatenate([[True], ks[1:] != ks[:-1]])
        gid = np.cumsum(new_group) - 1
        gstart = np.flatnonzero(new_group)
        gsize = np.diff(np.concatenate([gstart, [n]]))
        if gsize.max() < 2:
            continue
        if side is None:
            for off in range(1, min(int(gsize.max()), MAX_BUCKET_WINDOW + 1)):
                same = gid[off:] == gid[:-off]
                out.append(np.stack([order[:-off][same], order[off:][same]], axis=1))
            big = np.flatnonzero(gsize > MAX_BUCKET_WINDOW + 1)
            for g in big:
                members = order[gstart[g] : gstart[g] + gsize[g]]
                out.append(np.stack([np.full(len(members) - 1, members[0]), members[1:]], axis=1))
        else:
            s = side[order]
            multi = np.flatnonzero(gsize >= 2)
            # groups holding both sides only
            has_a = np.add.reduceat(s.astype(np.int64), gstart)
            mixed = multi[(has_a[multi] > 0) & (has_a[multi] < gsize[multi])]
            for g in mixed:
                members = order[gstart[g] : gstart[g] + gsize[g]]
                ms = side[members]
                qa, qb = members[ms], members[~ms]
                out.append(np.stack(np.meshgrid(qa, qb, indexing="ij"), axis=-1).reshape(-1, 2))
    if not out:
        return np.zeros((0, 2), np.int64)
    pairs = np.concatenate(out).astype(np.int64)
    pairs = np.sort(pairs, axis=1)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    key = np.unique(pairs[:, 0] * n + pairs[:, 1])
    return np.stack([key // n, key % n], axis=1)


def estimated_jaccard(sig: np.ndarray, pairs: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
    """Fraction of agreeing MinHash slots for each pair (an unbiased Jaccard estimate)."""
    out = np.empty(len(pairs), np.float64)
    for lo in range(0, len(pairs), chunk):
        p = pairs[lo : lo + chunk]
        out[lo : lo + chunk] = (sig[p[:, 0]] == sig[p[:, 1]]).mean(axis=1)
    return out


@dataclass(frozen=True)
class NearDupResult:
    pairs: np.ndarray  # [m, 2] verified pairs (i < j)
    jaccard: np.ndarray  # [m] estimated Jaccard of each
    candidates: int  # LSH candidates before verification


def near_duplicates(
    docs: Sequence[str],
    threshold: float,
    num_perm: int = 64,
    shingle_size: int = 3,
    side: np.ndarray | None = None,
    signatures: np.ndarray | None = None,
) -> NearDupResult:
    """Verified near-duplicate pairs among `docs` (or only across `side` when given)."""
    sig = signatures if signatures is not None else MinHasher(num_perm, shingle_size).signatures(docs)
    bands, rows = lsh_params(threshold, sig.shape[1])
    cand = candidate_pairs(sig, bands, rows, side=side)
    j = estimated_jaccard(sig, cand)
    keep = j >= threshold
    log.debug("near-dup: %d candidates (%d bands x %d rows), %d verified", len(cand), bands, rows, keep.sum())
    return NearDupResult(cand[keep], j[keep], len(cand))


def conversation_text(turns: Sequence[tuple[str, str]]) -> str:
    """The text MinHash sees: all turns' texts in order (roles do not change what is a copy)."""
    return "\n".join(text for _, text in turns)


class UnionFind:
    """Connected components over integer items (path halving, union by size)."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))
        self.size = [1] * n

    def find(self, x: int) -> int:
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]
