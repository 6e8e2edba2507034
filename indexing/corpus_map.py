"""The corpus map: every paper as a point in 2-D, computed at index time and stored with it.

Similar papers should land near each other, so the map is a t-SNE of the embedding (on a
PCA-50 reduction of it, the usual way to make t-SNE's neighbour search cheap and less noisy).
t-SNE's cost grows faster than linearly, so it is fitted on at most ``MAP_FIT_LIMIT`` papers,
a fixed sample, and every other paper is placed among its nearest fitted neighbours
(``place``), as incremental updates place the papers they add: the map of a large corpus
costs seconds, not hours. Everything is seeded: the same vectors give the same map, so rebuilding an
unchanged corpus does not reshuffle it.

scikit-learn is imported inside ``project``: it is slow to import and only the indexing job
needs it, never the service.
"""

from __future__ import annotations

import numpy as np

# Papers the t-SNE is fitted on; the others are placed among them (see the module docstring).
MAP_FIT_LIMIT = 2000
# Below this many papers t-SNE has too few neighbours to work with; a PCA to 2-D is used.
TSNE_MIN_PAPERS = 5
# Dimensions kept by the PCA ahead of t-SNE.
PCA_DIMENSIONS = 50
# Anchors a placed paper is averaged over, and the softmax temperature of their cosine
# similarities: a neighbour 0.02 less similar weighs e (2.7) times less, so the nearest few
# dominate, yet a paper between two groups lands between them rather than on one. Placing each
# of 2,000 fitted arXiv papers among the other 1,999, the mean distance to its fitted point was
# 0.16 of a random pair's at 0.02, 0.18 at 0.05 and 0.20 at 0.1 (k = 10; k = 5 or 20 alike).
PLACE_NEIGHBOURS = 10
PLACE_TEMPERATURE = 0.02
# Similarities computed at once (rows x anchors): 16 MB of float32, however many are placed.
PLACE_CHUNK_ELEMENTS = 1 << 22


def project(vectors: np.ndarray) -> np.ndarray:
    """(n, 2) float32 map coordinates in [-1, 1] for L2-normalised embedding rows."""
    count = len(vectors)
    if count < TSNE_MIN_PAPERS:
        return _scaled(_pca_plane(vectors))
    if count <= MAP_FIT_LIMIT:
        return _scaled(_tsne(vectors))
    fit_rows = np.sort(np.random.default_rng(0).choice(count, MAP_FIT_LIMIT, replace=False))
    fitted = _scaled(_tsne(vectors[fit_rows]))
    others = np.setdiff1d(np.arange(count), fit_rows)
    points = np.empty((count, 2), dtype=np.float32)
    points[fit_rows] = fitted
    # Placed points are weighted means of fitted ones, so they stay within [-1, 1] too.
    points[others] = place(vectors[others], vectors[fit_rows], fitted)
    return points


def place(
    vectors: np.ndarray,
    anchor_vectors: np.ndarray,
    anchor_points: np.ndarray,
    k: int = PLACE_NEIGHBOURS,
    *,
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    """Map points for ``vectors`` among anchors already on the map, without refitting it.

    Each vector goes to the softmax-weighted mean (of cosine similarity / ``PLACE_TEMPERATURE``)
    of the points of its ``k`` most similar anchors: a vector equal to an anchor lands on it,
    one between two groups between them. ``exclude[i]``, where given and not -1, is an anchor
    row vector ``i`` must not be placed by (a replaced paper's own earlier version). With no
    anchors every point is the origin.
    """
    points = np.zeros((len(vectors), 2), dtype=np.float32)
    # With one anchor excluded per row, k stays below the anchor count, so a row's k nearest
    # never include its excluded one.
    k = min(k, len(anchor_vectors) - (1 if exclude is not None else 0))
    if k < 1:
        return points
    anchors = np.asarray(anchor_vectors, dtype=np.float32).T
    anchor_points = np.asarray(anchor_points, dtype=np.float32)
    chunk = max(1, PLACE_CHUNK_ELEMENTS // len(anchor_vectors))
    for start in range(0, len(vectors), chunk):
        similarity = np.asarray(vectors[start : start + chunk], dtype=np.float32) @ anchors
        if exclude is not None:
            own = np.asarray(exclude[start : start + chunk])
            rows = np.flatnonzero(own >= 0)
            similarity[rows, own[rows]] = -np.inf
        nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        closeness = np.take_along_axis(similarity, nearest, axis=1)
        weights = np.exp((closeness - closeness.max(axis=1, keepdims=True)) / PLACE_TEMPERATURE)
        weights /= weights.sum(axis=1, keepdims=True)
        points[start : start + chunk] = np.einsum("rk,rkd->rd", weights, anchor_points[nearest])
    return points


def _tsne(vectors: np.ndarray) -> np.ndarray:
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    count, dimension = vectors.shape
    if dimension > PCA_DIMENSIONS and count > PCA_DIMENSIONS:
        vectors = PCA(n_components=PCA_DIMENSIONS, random_state=0).fit_transform(vectors)
    points: np.ndarray = TSNE(
        n_components=2, perplexity=min(30.0, (count - 1) / 3), init="pca", random_state=0
    ).fit_transform(vectors)
    return points


def _pca_plane(vectors: np.ndarray) -> np.ndarray:
    """The plane of most variance: all a handful of papers needs (a single one: the origin)."""
    centred = vectors - vectors.mean(axis=0)
    _, _, directions = np.linalg.svd(centred, full_matrices=False)
    plane = centred @ directions[:2].T
    return np.pad(plane, ((0, 0), (0, 2 - plane.shape[1])))


def _scaled(points: np.ndarray) -> np.ndarray:
    """``points`` as float32 scaled into [-1, 1], the range the map is drawn in."""
    largest = float(np.abs(points).max(initial=0.0))
    return (points / largest if largest > 0 else points).astype(np.float32)
