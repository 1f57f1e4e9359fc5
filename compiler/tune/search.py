"""Search over a config space: XGBoost-guided simulated annealing, and random / grid baselines.

All tuners share one small interface — ``next_batch(n)`` proposes configs not
measured yet, ``update(results)`` feeds measurements back — so the job loop,
logging and early stopping live elsewhere (``tosac.tune.job``). Every random
choice comes from the ``numpy.random.Generator`` built from the seed passed
in: the same seed and the same measurements give the same proposals.
"""
from __future__ import annotations

import abc
import math
from typing import Callable

import numpy as np

from tosac.pipeline.tuning_log import config_key
from tosac.schedules.space import Config, ConfigSpace
from tosac.tune.measure import MeasureResult
from tosac.tune.model import CostModel


class Tuner(abc.ABC):
    name = "base"

    def __init__(self, space: ConfigSpace, seed: int):
        self.space = space
        self.rng = np.random.default_rng(seed)
        self.measured: dict[str, tuple[Config, float]] = {}     # key -> (config, throughput; 0 = failed)

    def update(self, results: list[MeasureResult]) -> None:
        for r in results:
            self.measured[config_key(r.config)] = (r.config, 1.0 / r.median if r.valid else 0.0)

    def exhausted(self) -> bool:
        return len(self.measured) >= self.space.size

    @abc.abstractmethod
    def next_batch(self, n: int) -> list[Config]:
        ...

    def _random_unmeasured(self, n: int, exclude: set[str]) -> list[Config]:
        out: list[Config] = []
        seen = set(self.measured) | exclude
        for _ in range(50 * n + 100):
            if len(out) >= n or len(seen) >= self.space.size:
                break
            config = self.space.sample(self.rng)
            key = config_key(config)
            if key not in seen:
                seen.add(key)
                out.append(config)
        if len(out) < n and self.space.size <= 100_000:          # small remainder: enumerate it
            rest = [c for c in self.space if config_key(c) not in seen]
            picks = self.rng.permutation(len(rest))[: n - len(out)] if rest else []
            out.extend(rest[int(i)] for i in picks)
        return out


class RandomTuner(Tuner):
    name = "random"

    def next_batch(self, n: int) -> list[Config]:
        return self._random_unmeasured(n, set())


class GridTuner(Tuner):
    name = "grid"

    def __init__(self, space: ConfigSpace, seed: int):
        super().__init__(space, seed)
        self._points = iter(space)

    def next_batch(self, n: int) -> list[Config]:
        out = []
        for config in self._points:
            if config_key(config) not in self.measured:
                out.append(config)
            if len(out) == n:
                break
        return out


class XGBTuner(Tuner):
    """Simulated annealing over the space, scored by an XGBoost model retrained after every batch.

    The first ``warmup`` trials (the default config among them, see the job) are
    random; afterwards a fraction ``epsilon`` of every batch stays random so
    the model keeps seeing unexplored regions.
    """
    name = "xgb"

    def __init__(self, space: ConfigSpace, seed: int, featurize: Callable[[Config], np.ndarray],
                 epsilon: float = 0.1, warmup: int = 8, objective: str = "rank", population: int = 32,
                 steps: int = 30, model: CostModel | None = None):
        super().__init__(space, seed)
        self.featurize = featurize
        self.epsilon, self.warmup = epsilon, warmup
        self.population, self.steps = population, steps
        self.model = model or CostModel(objective, seed)

    def _fit(self) -> None:
        configs = [c for c, _ in self.measured.values()]
        x = np.array([self.featurize(c) for c in configs])
        y = np.array([t for _, t in self.measured.values()])
        self.model.fit(x, y)

    def _neighbour(self, config: Config) -> Config:
        knobs = [k for k in self.space.knobs if len(k.values) > 1]
        if not knobs:
            return dict(config)
        knob = knobs[int(self.rng.integers(len(knobs)))]
        out = dict(config)
        out[knob.name] = knob.values[int(self.rng.integers(len(knob.values)))]
        return out

    def _score(self, configs: list[Config]) -> np.ndarray:
        return self.model.predict(np.array([self.featurize(c) for c in configs]))

    def next_batch(self, n: int) -> list[Config]:
        if len(self.measured) < self.warmup or not self.measured:
            return self._random_unmeasured(n, set())
        self._fit()
        n_random = int(round(self.epsilon * n))
        if n > 1 and n_random == 0 and self.rng.random() < self.epsilon * n:
            n_random = 1
        ranked = self._anneal(n - n_random)
        chosen = ranked[: n - n_random]
        return chosen + self._random_unmeasured(n - len(chosen), {config_key(c) for c in chosen})

    def _anneal(self, n: int) -> list[Config]:
        """Best-scored unmeasured configs found by annealing from the best measured and random points."""
        best_measured = sorted(self.measured.values(), key=lambda ct: -ct[1])[: self.population // 2]
        points = [c for c, _ in best_measured]
        points += [self.space.sample(self.rng) for _ in range(self.population - len(points))]
        scores = self._score(points)
        found: dict[str, tuple[float, Config]] = {}
        temperature = 1.0
        span = float(np.ptp(scores)) or 1.0
        for _ in range(self.steps):
            proposals = [self._neighbour(p) for p in points]
            new_scores = self._score(proposals)
            for i, (config, score) in enumerate(zip(proposals, new_scores)):
                key = config_key(config)
                if key not in self.measured:
                    found[key] = (float(score), config)
                delta = (score - scores[i]) / span
                if delta > 0 or self.rng.random() < math.exp(delta / max(temperature, 1e-3)):
                    points[i], scores[i] = config, score
            temperature *= 0.85
        ranked = sorted(found.values(), key=lambda sc: -sc[0])
        return [config for _, config in ranked[:n]]


TUNERS = {"xgb": XGBTuner, "random": RandomTuner, "grid": GridTuner}
