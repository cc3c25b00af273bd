"""Clustering the document vectors with scikit-learn, and assigning queries to clusters.

K-means is the default (the paper's choice); MiniBatchKMeans is used automatically for large corpora;
GaussianMixture and Agglomerative clustering are offered for the paper's open question of which clustering
algorithm works best. Every algorithm is seeded, so the same input gives the same clusters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

ClusterAlgorithm = Literal["auto", "kmeans", "minibatch_kmeans", "gmm", "agglomerative"]
CLUSTER_ALGORITHMS: tuple[str, ...] = ("auto", "kmeans", "minibatch_kmeans", "gmm", "agglomerative")
# Above this many documents, "auto" switches from KMeans to MiniBatchKMeans (KMeans' full passes get slow).
MINIBATCH_ABOVE = 50_000
# Agglomerative clustering needs O(n^2) memory; refuse beyond this instead of exhausting RAM.
AGGLOMERATIVE_MAX = 20_000


@dataclass(frozen=True)
class Clustering:
    labels: np.ndarray  # cluster of every document
    centroids: np.ndarray  # one unit-length centroid per cluster (queries are assigned to the nearest)
    algorithm: str

    @property
    def sizes(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=len(self.centroids))

    def assign(self, vectors: np.ndarray) -> np.ndarray:
        """Cluster of each vector: the centroid with the highest cosine."""
        best = np.empty(len(vectors), dtype=np.int64)
        for start in range(0, len(vectors), 8192):
            best[start : start + 8192] = np.argmax(vectors[start : start + 8192] @ self.centroids.T, axis=1)
        return best


def default_cluster_count(n_documents: int) -> int:
    """About sqrt(n / 2) clusters (at least 2): clusters of a few dozen documents in a corpus of thousands."""
    return int(max(2, min(n_documents, round(np.sqrt(n_documents / 2)))))


def _unit_centroids(vectors: np.ndarray, labels: np.ndarray, n_clusters: int) -> np.ndarray:
    sums = np.zeros((n_clusters, vectors.shape[1]), dtype=np.float64)
    np.add.at(sums, labels, vectors)
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (sums / norms).astype(np.float32)


def cluster_documents(
    vectors: np.ndarray,
    *,
    n_clusters: int | None = None,
    algorithm: ClusterAlgorithm = "auto",
    seed: int = 0,
) -> Clustering:
    """Cluster unit-length document vectors (cosine geometry: K-means on unit vectors is spherical K-means)."""
    from sklearn.cluster import AgglomerativeClustering, KMeans, MiniBatchKMeans
    from sklearn.mixture import GaussianMixture

    n = len(vectors)
    if n < 2:
        raise ValueError(f"Clustering needs at least 2 documents, got {n}.")
    k = default_cluster_count(n) if n_clusters is None else int(n_clusters)
    if not 2 <= k <= n:
        raise ValueError(f"n_clusters must be between 2 and the number of documents ({n}), got {k}.")
    if algorithm not in CLUSTER_ALGORITHMS:
        raise ValueError(f"Unknown clustering algorithm {algorithm!r}; choose one of {CLUSTER_ALGORITHMS}.")
    if algorithm == "auto":
        algorithm = "minibatch_kmeans" if n > MINIBATCH_ABOVE else "kmeans"
    if algorithm == "kmeans":
        labels = KMeans(n_clusters=k, n_init="auto", random_state=seed).fit_predict(vectors)
    elif algorithm == "minibatch_kmeans":
        labels = MiniBatchKMeans(n_clusters=k, n_init="auto", batch_size=4096, random_state=seed).fit_predict(vectors)
    elif algorithm == "gmm":
        labels = GaussianMixture(n_components=k, covariance_type="diag", random_state=seed).fit_predict(vectors)
    else:
        if n > AGGLOMERATIVE_MAX:
            raise ValueError(
                f"Agglomerative clustering needs O(n^2) memory; {n} documents is over the limit of "
                f"{AGGLOMERATIVE_MAX}. Use 'kmeans' or 'minibatch_kmeans'."
            )
        labels = AgglomerativeClustering(n_clusters=k, metric="cosine", linkage="average").fit_predict(vectors)
    labels = np.asarray(labels, dtype=np.int64)
    return Clustering(labels=labels, centroids=_unit_centroids(vectors, labels, k), algorithm=algorithm)
