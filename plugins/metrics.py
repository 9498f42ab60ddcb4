"""Classification metrics on a held-out split, in numpy.

Binary targets: precision, recall and F1 are those of the positive class,
and ROC AUC ranks the positive-class scores. More than two classes:
precision, recall and F1 are macro averages and ROC AUC is left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

# Demographic parity needs a categorical attribute; more groups than this
# usually means a continuous column was named by mistake.
MAX_SENSITIVE_GROUPS = 50


def classification_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    positive_scores: np.ndarray | None,
    classes: Sequence[Any],
    positive_index: int | None,
    sensitive: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """Compute the held-out metrics of one classifier.

    Args:
        y_true: true class indices into ``classes``.
        y_pred: predicted class indices.
        positive_scores: the predicted probability of the positive class
            (binary targets only), for ROC AUC.
        classes: the class labels; per-class values are keyed by ``str(label)``.
        positive_index: index of the positive class for a binary target,
            None for more than two classes.
        sensitive: the sensitive attribute per row, for the fairness gap.

    Returns:
        ``accuracy``, ``precision``, ``recall``, ``f1``, ``recall_by_class``,
        ``support_by_class``, ``roc_auc`` (binary), ``fairness_gap`` (with
        ``sensitive``) and ``rows``.
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    per_class = [
        _precision_recall(y_true, y_pred, index) for index in range(len(classes))
    ]
    metrics: dict[str, Any] = {
        "rows": int(len(y_true)),
        "accuracy": float(np.mean(y_true == y_pred)) if len(y_true) else 0.0,
        "recall_by_class": {
            str(label): pr[1] for label, pr in zip(classes, per_class, strict=True)
        },
        "support_by_class": {
            str(label): int(np.sum(y_true == index))
            for index, label in enumerate(classes)
        },
    }
    if positive_index is not None:
        precision, recall = per_class[positive_index]
        metrics["positive_class"] = str(classes[positive_index])
    else:
        precision = float(np.mean([pr[0] for pr in per_class]))
        recall = float(np.mean([pr[1] for pr in per_class]))
    metrics["precision"] = precision
    metrics["recall"] = recall
    metrics["f1"] = _f1(precision, recall)
    if positive_index is not None and positive_scores is not None:
        auc = roc_auc(y_true == positive_index, np.asarray(positive_scores))
        if auc is not None:
            metrics["roc_auc"] = auc
    if sensitive is not None:
        metrics["fairness_gap"] = demographic_parity_difference(
            y_pred, sensitive, len(classes), positive_index
        )
    return metrics


def roc_auc(is_positive: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve via the rank-sum statistic, ties counted half.

    Returns None when only one class is present, where it is undefined.
    """
    positives = int(np.sum(is_positive))
    negatives = len(is_positive) - positives
    if positives == 0 or negatives == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores), dtype=np.float64)
    start = 0
    while start < len(scores):
        end = start
        while end + 1 < len(scores) and sorted_scores[end + 1] == sorted_scores[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    rank_sum = float(np.sum(ranks[is_positive]))
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def demographic_parity_difference(
    y_pred: np.ndarray,
    sensitive: Sequence[Any],
    class_count: int,
    positive_index: int | None,
) -> float:
    """Largest gap between groups in the rate of predicting a class.

    For a binary target it is max minus min over the groups of
    P(prediction = positive | group). With more classes it is the largest
    such gap over all classes. 0 means every group gets the same rates.
    """
    groups: dict[Any, list[int]] = {}
    for index, value in enumerate(sensitive):
        groups.setdefault(value, []).append(index)
    if len(groups) > MAX_SENSITIVE_GROUPS:
        raise ValueError(
            f"The sensitive attribute has {len(groups)} distinct values; the fairness "
            f"gap needs a categorical column with at most {MAX_SENSITIVE_GROUPS}."
        )
    if len(groups) < 2:
        return 0.0
    candidates = [positive_index] if positive_index is not None else range(class_count)
    gap = 0.0
    for class_index in candidates:
        rates = [
            float(np.mean(y_pred[rows] == class_index)) for rows in groups.values()
        ]
        gap = max(gap, max(rates) - min(rates))
    return gap


def _precision_recall(
    y_true: np.ndarray, y_pred: np.ndarray, index: int
) -> tuple[float, float]:
    true_positive = int(np.sum((y_pred == index) & (y_true == index)))
    predicted = int(np.sum(y_pred == index))
    actual = int(np.sum(y_true == index))
    precision = true_positive / predicted if predicted else 0.0
    recall = true_positive / actual if actual else 0.0
    return precision, recall


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0
