"""BM25 over segments with tombstones ranks exactly as one index of the live papers.

bm25s ("lucene", the scoring lexical.py reproduces) is the oracle on the seed papers; a
segmented index, and the merge of its segments, are checked against one index built from the
live texts in global order, for the rows, the scores and the idf of many queries.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import bm25s
import numpy as np
import pytest

from indexing import lexical
from indexing.corpus import read_corpus
from indexing.lexical import LexicalIndex, Parts, SegmentPostings, analyse, merge_postings
from indexing.records import embedding_text
from service.settings import SEED_CAPTURE_DATE
from tests.conftest import SEEDS

QUERIES = [
    "recommendation systems",
    "large language model reasoning",
    "graph neural network graph",  # a term twice weighs twice
    "short video watch time prediction",
    "retrieval augmented generation benchmark",
    "the of and",  # stopwords only: no term
    "zyxwvut",  # in no paper
]


@pytest.fixture(scope="module")
def texts() -> list[str]:
    papers = read_corpus([SEEDS], SEED_CAPTURE_DATE).papers
    assert len(papers) == 98
    return [embedding_text(paper) for paper in papers]


def queries(texts: list[str], count: int, seed: int = 7) -> list[list[str]]:
    """The fixed queries, then random draws of one to four terms of the seed texts (rare terms
    among them, whose holders a tombstone may remove), some repeated."""
    vocabulary = sorted({term for text in texts for term in analyse(text)})
    chosen = random.Random(seed)
    drawn = [chosen.choices(vocabulary, k=chosen.randint(1, 4)) for _ in range(count)]
    return [analyse(query) for query in QUERIES] + drawn


def test_scores_and_idf_equal_bm25s_lucene(texts: list[str], tmp_path: Path) -> None:
    index = LexicalIndex.build(texts, tmp_path / "lexical")
    tokens = [analyse(text) for text in texts]
    oracle = bm25s.BM25(k1=1.5, b=0.75)  # method "lucene" is bm25s's default
    assert oracle.method == "lucene"
    oracle.index(tokens, show_progress=False)
    assert index.size == len(texts)

    segment = SegmentPostings.open(tmp_path / "lexical")
    assert set(segment.terms()) == set(oracle.vocab_dict) - {""}
    for terms in queries(texts, 40):
        known = [term for term in terms if term in oracle.vocab_dict]
        expected = oracle.get_scores(known) if known else np.zeros(len(texts))
        np.testing.assert_allclose(index.scores(terms), expected, rtol=0, atol=1e-5)
        rows, scores = index.matches(terms)
        assert rows.dtype == np.int64 and scores.dtype == np.float32
        assert np.array_equal(rows, np.flatnonzero(expected))
    indptr = oracle.scores["indptr"]
    for term, term_id in list(oracle.vocab_dict.items())[:300]:
        if term:
            df = int(indptr[term_id + 1] - indptr[term_id])
            assert index.idf(term) == pytest.approx(math.log(1 + (98 - df + 0.5) / (df + 0.5)))


def test_duplicated_query_term_counts_twice(texts: list[str], tmp_path: Path) -> None:
    index = LexicalIndex.build(texts, tmp_path / "lexical")
    once, twice = index.matches(["graph"]), index.matches(["graph", "graph"])
    assert np.array_equal(once[0], twice[0]) and len(once[0]) > 0
    np.testing.assert_allclose(twice[1], 2 * once[1], rtol=1e-6)


def segmented(texts: list[str], folder: Path) -> tuple[Parts, list[str]]:
    """The seeds in three segments with tombstones, as updates leave them: paper 5 replaced
    (dead in the base, its new text in the last delta), paper 41 re-added unchanged, others
    removed. Returns the parts and the live texts in global order."""
    replaced = texts[5] + " Revised: graph transformers for zyxwvut retrieval."
    contents = [texts[:40], texts[40:70], [*texts[70:], replaced, texts[41]]]
    dead = [{5, 17, 39}, {1, 10, 29}, {3}]  # local rows: 40+1 is texts[41], re-added below
    parts = []
    live_texts = []
    for number, (segment_texts, tombstones) in enumerate(zip(contents, dead, strict=True)):
        SegmentPostings.write(folder / f"segment-{number}", segment_texts)
        segment = SegmentPostings.open(folder / f"segment-{number}")
        assert segment.size == len(segment_texts)
        live = np.array([row for row in range(segment.size) if row not in tombstones])
        parts.append((segment, live))
        live_texts += [segment_texts[row] for row in live]
    return parts, live_texts


def assert_same_ranking(index: LexicalIndex, single: LexicalIndex, texts: list[str]) -> None:
    assert index.size == single.size
    for terms in queries(texts, 150):
        rows, scores = index.matches(terms)
        expected_rows, expected_scores = single.matches(terms)
        assert np.array_equal(rows, expected_rows), terms
        np.testing.assert_allclose(scores, expected_scores, rtol=0, atol=1e-5)
        for term in terms:
            assert index.idf(term) == pytest.approx(single.idf(term), rel=1e-12, abs=0)
    np.testing.assert_allclose(
        index.scores(analyse(QUERIES[1])), single.scores(analyse(QUERIES[1])), rtol=0, atol=1e-5
    )


def test_segments_with_tombstones_rank_as_one_index(texts: list[str], tmp_path: Path) -> None:
    parts, live_texts = segmented(texts, tmp_path)
    single = LexicalIndex.build(live_texts, tmp_path / "single")
    index = LexicalIndex(parts)
    assert index.size == len(live_texts) == 98 - 7 + 2
    assert_same_ranking(index, single, texts)
    # The replacement's new words are found in its new place, the last delta's second-last row.
    rows, _ = index.matches(["zyxwvut"])
    assert rows.tolist() == [index.size - 2]
    # Every row live, given as None or as all rows, is the same index.
    whole = [(segment, None) for segment, _ in parts]
    listed = [(segment, np.arange(segment.size)) for segment, _ in parts]
    assert_same_ranking(LexicalIndex(listed), LexicalIndex(whole), texts)


@pytest.mark.parametrize("small_batches", [False, True])
def test_merge_equals_one_index_and_a_rebuild(
    texts: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_batches: bool
) -> None:
    if small_batches:  # postings and texts streamed in pieces that split terms' postings
        monkeypatch.setattr("indexing.lexical._CHUNK", 97)
        monkeypatch.setattr("indexing.lexical._TEXTS_PER_BATCH", 13)
    parts, live_texts = segmented(texts, tmp_path)
    merge_postings(parts, tmp_path / "merged")
    merged = SegmentPostings.open(tmp_path / "merged")
    single = LexicalIndex.build(live_texts, tmp_path / "single")
    assert_same_ranking(LexicalIndex([(merged, None)]), single, texts)
    # Byte for byte what writing the live texts gives: terms no live row holds are gone.
    rebuilt = tmp_path / "single"
    for name in SegmentPostings.FILES:
        assert (tmp_path / "merged" / name).read_bytes() == (rebuilt / name).read_bytes(), name
    assert merged.term_id("zyxwvut") is not None


def test_dead_segment_absent_terms_and_empty_texts(texts: list[str], tmp_path: Path) -> None:
    SegmentPostings.write(tmp_path / "gone", texts[:10])
    SegmentPostings.write(tmp_path / "rest", ["", "   ", "the and of", *texts[10:20], "-- 42 !"])
    SegmentPostings.write(tmp_path / "none", [])
    gone, rest = SegmentPostings.open(tmp_path / "gone"), SegmentPostings.open(tmp_path / "rest")
    none = SegmentPostings.open(tmp_path / "none")
    assert none.size == 0 and none.term_count == 0
    assert rest.lengths[:3].tolist() == [0, 0, 0] and rest.lengths[-1] == 1
    parts: Parts = [(gone, np.zeros(0, dtype=np.int64)), (none, None), (rest, None)]
    index = LexicalIndex(parts)
    single = LexicalIndex.build(["", "   ", "the and of", *texts[10:20], "-- 42 !"], tmp_path / "s")
    assert index.size == 14
    assert_same_ranking(index, single, texts)
    # A word only the dead segment holds matches nothing and weighs nothing.
    only_dead = sorted(
        {term for text in texts[:10] for term in analyse(text)}
        - {term for text in texts[10:20] for term in analyse(text)}
    )[0]
    assert index.matches([only_dead])[0].size == 0 and index.idf(only_dead) == 0.0
    assert index.matches(["zyxwvut"])[0].size == 0 and index.idf("zyxwvut") == 0.0
    assert not index.scores(["zyxwvut"]).any()
    merge_postings(parts, tmp_path / "merged")
    merged = SegmentPostings.open(tmp_path / "merged")
    assert merged.size == 14 and merged.term_id(only_dead) is None
    assert_same_ranking(LexicalIndex([(merged, None)]), single, texts)
    # Nothing live at all.
    empty = LexicalIndex([(gone, np.zeros(0, dtype=np.int64)), (none, None)])
    assert empty.size == 0 and empty.scores(["graph"]).shape == (0,)
    assert empty.matches(["graph"])[0].size == 0 and empty.idf("graph") == 0.0
    SegmentPostings.write(tmp_path / "blank", ["", "of the"])
    blank = LexicalIndex([(SegmentPostings.open(tmp_path / "blank"), None)])
    assert blank.size == 2 and blank.matches(["graph"])[0].size == 0


def test_unicode_terms_and_vocabulary_bisection(texts: list[str], tmp_path: Path) -> None:
    unicode = [
        "Über café naïve résumé",
        "東京 大学 αβγ décision",
        "Ωmega ζeta café",
        "ﬁnance ǅungla",
    ]
    index = LexicalIndex.build([*texts[:20], *unicode], tmp_path / "lexical")
    segment = SegmentPostings.open(tmp_path / "lexical")
    vocabulary = segment.terms()
    assert vocabulary == sorted(vocabulary) and len(vocabulary) == segment.term_count
    assert [term.encode() for term in vocabulary] == sorted(term.encode() for term in vocabulary)
    for term_id, term in enumerate(vocabulary):  # first and last terms included
        assert segment.term_id(term) == term_id
        assert segment.term(term_id) == term
    first, last = vocabulary[0], vocabulary[-1]
    assert not last.isascii()  # CJK sorts after every Latin word
    for absent in ["", "\x00", first[:-1] if len(first) > 1 else "0", last + "z", "\U0010ffff"]:
        assert segment.term_id(absent) is None
    tokens = [analyse(text) for text in [*texts[:20], *unicode]]
    oracle = bm25s.BM25(k1=1.5, b=0.75)
    oracle.index(tokens, show_progress=False)
    for text in unicode:
        terms = analyse(text)
        assert terms and all(segment.term_id(term) is not None for term in terms)
        np.testing.assert_allclose(index.scores(terms), oracle.get_scores(terms), atol=1e-5)
    assert index.matches(analyse("café"))[0].tolist() == [20, 22]


def test_open_refuses_inconsistent_segments(texts: list[str], tmp_path: Path) -> None:
    folder = tmp_path / "lexical"
    SegmentPostings.write(folder, texts[:10])
    with pytest.raises(FileExistsError):
        SegmentPostings.write(folder, texts[:5])
    counts = np.load(folder / SegmentPostings.COUNTS)
    np.save(folder / SegmentPostings.COUNTS, counts[:-1])
    with pytest.raises(ValueError, match="term counts"):
        SegmentPostings.open(folder)
    np.save(folder / SegmentPostings.COUNTS, counts.astype(np.float32))
    with pytest.raises(ValueError, match="1-D uint16 or int32"):
        SegmentPostings.open(folder)
    np.save(folder / SegmentPostings.COUNTS, np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="not a readable array"):
        SegmentPostings.open(folder)
    np.save(folder / SegmentPostings.COUNTS, counts)
    (folder / SegmentPostings.TERMS).write_bytes(b"x")
    with pytest.raises(ValueError, match="vocabulary bytes"):
        SegmentPostings.open(folder)
    (folder / SegmentPostings.LENGTHS).unlink()
    with pytest.raises(ValueError, match=r"lacks lengths\.npy"):
        SegmentPostings.open(folder)


def test_live_rows_are_checked(texts: list[str], tmp_path: Path) -> None:
    SegmentPostings.write(tmp_path / "lexical", texts[:10])
    segment = SegmentPostings.open(tmp_path / "lexical")
    wrong = [[3, 2], [1, 1], [-1, 2], [9, 10]]
    for live in [np.array(rows) for rows in wrong] + [np.array([3, 2], dtype=np.uint32)]:
        with pytest.raises(ValueError, match="ascend strictly"):
            LexicalIndex([(segment, live)])
    with pytest.raises(ValueError, match="1-D integer"):
        LexicalIndex([(segment, np.array([0.5]))])


def test_both_ways_of_summing_a_querys_postings_agree(monkeypatch, tmp_path):
    """Lists summed into an array over every paper (common words) or merged by sorting
    (rare ones): the same rows and scores."""
    corpus = read_corpus([SEEDS], SEED_CAPTURE_DATE)
    index = LexicalIndex.build([embedding_text(p) for p in corpus.papers], tmp_path / "lexical")
    query = analyse("recommendation model users video ranking")
    monkeypatch.setattr(lexical, "DENSE_MERGE_SHARE", 1 << 30)  # always summed densely
    summed = index.matches(query)
    monkeypatch.setattr(lexical, "DENSE_MERGE_SHARE", 0)  # always merged by sorting
    merged = index.matches(query)
    assert np.array_equal(summed[0], merged[0]) and len(summed[0]) > 20
    assert np.allclose(summed[1], merged[1], atol=1e-6)
