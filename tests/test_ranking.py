"""Fusion, ordering and date sorting on small arrays whose answers can be worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from service.ranking import Fusion, FusionConfig, hybrid_scores, newest_first, ranked_rows


def test_blend_scales_each_signal_to_0_1_over_the_corpus_then_weights_them():
    dense = np.array([0.2, 0.6, 1.0], dtype=np.float32)  # -> 0, 0.5, 1
    bm25 = np.array([8.0, 0.0, 2.0], dtype=np.float32)  # -> 1, 0, 0.25
    fused = hybrid_scores(dense, bm25, FusionConfig(Fusion.BLEND, dense_weight=0.6))
    assert fused == pytest.approx([0.4, 0.3, 0.7])


def test_blend_of_a_constant_signal_is_the_other_signal():
    dense = np.array([0.1, 0.3, 0.2], dtype=np.float32)
    nothing = np.zeros(3, dtype=np.float32)  # no paper has a query term
    fused = hybrid_scores(dense, nothing, FusionConfig(Fusion.BLEND, dense_weight=0.6))
    assert fused == pytest.approx([0.0, 0.6, 0.3])


def test_reciprocal_rank_fusion_adds_1_over_k_plus_rank():
    dense = np.array([0.9, 0.5, 0.1], dtype=np.float32)  # ranks 1, 2, 3
    bm25 = np.array([0.0, 3.0, 7.0], dtype=np.float32)  # ranks 3, 2, 1
    fused = hybrid_scores(dense, bm25, FusionConfig(Fusion.RRF, rrf_k=60))
    assert fused == pytest.approx([1 / 61 + 1 / 63, 2 / 62, 1 / 63 + 1 / 61])


def test_ranked_rows_orders_by_score_then_row():
    scores = np.array([0.5, 0.9, 0.5, 0.1, 0.9])
    everything = np.arange(5)
    assert ranked_rows(scores, everything, 5).tolist() == [1, 4, 0, 2, 3]
    assert ranked_rows(scores, everything, 3).tolist() == [1, 4, 0]
    assert ranked_rows(scores, np.array([0, 2, 3]), 2).tolist() == [0, 2]
    assert ranked_rows(scores, everything, 0).tolist() == []


def test_pages_of_tied_scores_neither_overlap_nor_skip():
    scores = np.array([1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.2])
    rows = np.arange(7)
    pages = [ranked_rows(scores, rows, stop)[stop - 2 : stop].tolist() for stop in (2, 4, 6)]
    assert [row for page in pages for row in page] == ranked_rows(scores, rows, 6).tolist()
    assert pages == [[0, 1], [2, 3], [4, 5]]


def test_newest_first_keeps_relevance_order_within_a_day_and_puts_undated_last():
    published = np.array([730_000, -1, 730_500, 730_500, 729_000])
    in_relevance_order = np.array([1, 3, 0, 2, 4])
    assert newest_first(in_relevance_order, published).tolist() == [3, 2, 0, 4, 1]
