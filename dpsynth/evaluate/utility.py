"""Utility: train on synthetic, test on real (TSTR), beside train on real, test on real."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from dpsynth.errors import param_error
from dpsynth.schema import CATEGORY_KINDS, Schema


def _features(df: pd.DataFrame, schema: Schema, target: str) -> pd.DataFrame:
    cols = {}
    for col in schema.data_columns:
        if col.name == target or col.kind == "text" or col.name not in df.columns:
            continue
        s = df[col.name]
        if col.kind in CATEGORY_KINDS:
            cats = [str(c) for c in col.categories] if col.categories else None
            cols[col.name] = pd.Categorical(s.astype("string").astype(object), categories=cats)
        elif col.kind == "datetime":
            cols[col.name] = pd.to_datetime(s, errors="coerce").astype("int64") / 1e9
        else:
            cols[col.name] = pd.to_numeric(s, errors="coerce").astype(float)
    return pd.DataFrame(cols, index=df.index)


def _binary_target(s: pd.Series, positive: object) -> np.ndarray:
    return (s.astype(str) == str(positive)).to_numpy().astype(int)


def tstr_auc(train: pd.DataFrame, test: pd.DataFrame, schema: Schema, target: str, *,
             positive: object | None = None, random_state: int = 0) -> float:
    """ROC-AUC on ``test`` of a gradient-boosted classifier trained on ``train``.

    ``target`` must be a categorical column; ``positive`` names the positive class (default:
    the last declared category). Returns 0.5 when ``train`` holds a single class.
    """
    if target not in schema or schema[target].kind not in CATEGORY_KINDS:
        raise param_error("target", "a categorical column of the schema", target, "tstr_auc")
    cats = schema[target].categories or sorted(test[target].astype(str).unique())
    positive = cats[-1] if positive is None else positive
    y_train = _binary_target(train[target], positive)
    y_test = _binary_target(test[target], positive)
    if len(np.unique(y_test)) < 2:
        raise param_error("test", "a frame with both classes of the target", target, "tstr_auc")
    if len(np.unique(y_train)) < 2:
        return 0.5
    model = HistGradientBoostingClassifier(categorical_features="from_dtype",
                                           random_state=random_state, max_iter=200)
    model.fit(_features(train, schema, target), y_train)
    proba = model.predict_proba(_features(test, schema, target))[:, 1]
    return float(roc_auc_score(y_test, proba))
