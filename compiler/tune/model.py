"""The XGBoost cost model: trained online on measured candidates, predicts which configs are fast.

Two objectives, chosen by constructor argument:
- ``rank`` (default): ``rank:pairwise`` on throughput. The search only needs
  the order of candidates, and pairwise ranking is insensitive to the large
  absolute differences between tasks, which helps when warm-starting from
  other tasks' records (transfer).
- ``regression``: squared error on log-throughput (log GOPS). Gives values,
  not just an order; slightly worse at picking the top candidates here.
Failed trials get the lowest score, so the model learns to avoid them.
Training is seeded.
"""
from __future__ import annotations

import numpy as np
import xgboost as xgb


class CostModel:
    def __init__(self, objective: str = "rank", seed: int = 0, rounds: int = 60):
        if objective not in ("rank", "regression"):
            raise ValueError(f"objective must be 'rank' or 'regression', not {objective!r}")
        self.objective, self.seed, self.rounds = objective, seed, rounds
        self._booster: xgb.Booster | None = None
        self._base_x: np.ndarray | None = None          # transfer: records of other tasks
        self._base_y: np.ndarray | None = None

    def warm_start(self, features: np.ndarray, throughput: np.ndarray) -> None:
        """Records of earlier tasks that training always includes (transfer learning)."""
        self._base_x, self._base_y = features, throughput

    def fit(self, features: np.ndarray, throughput: np.ndarray) -> None:
        """``throughput`` is higher-is-better (e.g. 1 / seconds); 0 for failed trials."""
        x, y = features, throughput
        groups = [len(y)]
        if self._base_x is not None and len(self._base_y):
            if self._base_x.shape[1] == x.shape[1]:
                x, y = np.vstack([x, self._base_x]), np.concatenate([y, self._base_y])
                groups = [len(throughput), len(self._base_y)]
        if len(y) < 2:
            return
        if self.objective == "rank":
            label = _relative(y, groups)
            params = {"objective": "rank:pairwise", "eta": 0.2, "max_depth": 6, "min_child_weight": 1,
                      "subsample": 1.0, "seed": self.seed, "verbosity": 0, "nthread": 1}
            dtrain = xgb.DMatrix(x, label=label)
            dtrain.set_group(groups)
        else:
            label = np.log(np.maximum(y, 1e-12))
            label = np.where(y > 0, label, label[y > 0].min() - 1 if (y > 0).any() else -1.0)
            params = {"objective": "reg:squarederror", "eta": 0.2, "max_depth": 6, "seed": self.seed,
                      "verbosity": 0, "nthread": 1}
            dtrain = xgb.DMatrix(x, label=label)
        self._booster = xgb.train(params, dtrain, num_boost_round=self.rounds)

    @property
    def trained(self) -> bool:
        return self._booster is not None

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Scores, higher is faster (only their order is meaningful with ``rank``)."""
        if self._booster is None:
            return np.zeros(len(features))
        return self._booster.predict(xgb.DMatrix(features))


def _relative(y: np.ndarray, groups: list[int]) -> np.ndarray:
    """Throughput relative to the best of its group, as integer relevance grades 0..30 for ranking."""
    out = np.zeros(len(y))
    start = 0
    for size in groups:
        part = y[start:start + size]
        best = part.max() if part.size and part.max() > 0 else 1.0
        out[start:start + size] = np.round(30 * part / best)
        start += size
    return out
