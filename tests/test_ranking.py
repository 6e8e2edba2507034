"""Fusion, ordering and date sorting on small arrays whose answers can be worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from service.ranking import Fusion, FusionConfig, best_first, hybrid_scores, newest_first

BLEND = FusionConfig(Fusion.BLEND, dense_weight=0.6)


def test_blend_scales_each_signal_to_0_1_over_the_corpus_then_weights_them():
    dense = np.array([0.2, 0.6, 1.0], dtype=np.float32)  # -> 0, 0.5, 1
    bm25 = np.array([8.0, 0.0, 2.0], dtype=np.float32)  # -> 1, 0, 0.25
    fused = hybrid_scores(dense, bm25, BLEND, dense_range=(0.2, 1.0), lexical_max=8.0)
    assert fused == pytest.approx([0.4, 0.3, 0.7])


def test_blend_scales_by_the_corpus_range_not_by_the_candidates():
    dense = np.array([0.6, 1.0], dtype=np.float32)  # the corpus reaches down to 0.2
    bm25 = np.array([0.0, 2.0], dtype=np.float32)  # and up to 8
    fused = hybrid_scores(dense, bm25, BLEND, dense_range=(0.2, 1.0), lexical_max=8.0)
    assert fused == pytest.approx([0.3, 0.7])


def test_blend_of_a_constant_signal_is_the_other_signal():
    dense = np.array([0.1, 0.3, 0.2], dtype=np.float32)
    nothing = np.zeros(3, dtype=np.float32)  # no paper has a query term
    fused = hybrid_scores(dense, nothing, BLEND, dense_range=(0.1, 0.3), lexical_max=0.0)
    assert fused == pytest.approx([0.0, 0.6, 0.3])


def test_reciprocal_rank_fusion_adds_1_over_k_plus_rank():
    dense = np.array([0.9, 0.5, 0.1], dtype=np.float32)  # ranks 1, 2, 3
    bm25 = np.array([0.0, 3.0, 7.0], dtype=np.float32)  # ranks 3, 2, 1
    rrf = FusionConfig(Fusion.RRF, rrf_k=60)
    fused = hybrid_scores(dense, bm25, rrf, dense_range=(0.1, 0.9), lexical_max=7.0)
    assert fused == pytest.approx([1 / 61 + 1 / 63, 2 / 62, 1 / 63 + 1 / 61])


def test_best_first_orders_by_score_then_row():
    rows = np.array([40, 11, 20, 3, 14])
    scores = np.array([0.5, 0.9, 0.5, 0.1, 0.9])
    assert rows[best_first(rows, scores, 5)].tolist() == [11, 14, 20, 40, 3]
    assert rows[best_first(rows, scores, 3)].tolist() == [11, 14, 20]
    assert best_first(rows, scores, 0).tolist() == []


def test_pages_of_tied_scores_neither_overlap_nor_skip():
    scores = np.array([1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.2])
    rows = np.array([6, 5, 4, 3, 2, 1, 0])
    pages = [rows[best_first(rows, scores, stop)][stop - 2 : stop].tolist() for stop in (2, 4, 6)]
    assert [row for page in pages for row in page] == rows[best_first(rows, scores, 6)].tolist()
    assert pages == [[6, 1], [2, 3], [4, 5]]


def test_newest_first_keeps_relevance_order_within_a_day_and_puts_undated_last():
    published = np.array([730_000, -1, 730_500, 730_500, 729_000])
    in_relevance_order = np.array([1, 3, 0, 2, 4])
    assert newest_first(in_relevance_order, published).tolist() == [3, 2, 0, 4, 1]
