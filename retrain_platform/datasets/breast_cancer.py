"""The Wisconsin breast cancer data bundled with scikit-learn: is the tumour malignant?

It is here to prove that the graph is generic: a second dataset is this spec and nothing else.
It has no time axis, so it is split in row order and has no data window.
"""

from __future__ import annotations

import pandas as pd
from sklearn.datasets import load_breast_cancer

from .spec import DatasetSpec, Numeric

_MEASURES = ("radius", "texture", "perimeter", "area", "smoothness", "compactness", "concavity",
             "concave_points", "symmetry", "fractal_dimension")  # fmt: skip
_FEATURES = tuple(f"{stat}_{measure}" for stat in ("mean", "error", "worst") for measure in _MEASURES)


def load() -> pd.DataFrame:
    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.data.set_axis(list(_FEATURES), axis=1)  # sklearn's names have spaces
    frame.insert(0, "sample_id", range(len(frame)))
    frame["malignant"] = (bunch.target == 0).astype("int64")  # sklearn codes malignant as 0
    return frame


BREAST_CANCER = DatasetSpec(
    name="breast_cancer",
    description="Wisconsin diagnostic breast cancer (scikit-learn bundle); target: malignant.",
    features=tuple(Numeric(name, min=0) for name in _FEATURES),
    target="malignant",
    id_column="sample_id",
    timestamp=None,
    load=load,
    auc_floor=0.9,
    recall_floor=0.8,
    min_rows=100,
)
