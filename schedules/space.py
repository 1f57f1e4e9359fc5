"""Knobs and config spaces: what a schedule template lets the tuner choose.

A config is a plain ``dict[str, int | str]`` (JSON-serialisable, stored in
tuning logs). A space lists each knob's legal values; every point of the
space is a valid schedule that gives bit-identical results, so the tuner may
pick any of them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from tosac.errors import CodegenError

Config = dict[str, int | str]


@dataclass(frozen=True)
class Knob:
    name: str
    values: tuple[int | str, ...]
    doc: str = ""


@dataclass
class ConfigSpace:
    """The knobs of one template instance and its default point."""
    template: str
    knobs: list[Knob] = field(default_factory=list)
    default: Config = field(default_factory=dict)
    seeds: list[Config] = field(default_factory=list)     # other good starting points the tuner measures first

    def add(self, name: str, values, default, doc: str = "") -> None:
        values = tuple(dict.fromkeys(values))          # unique, order kept
        if default not in values:
            values = values + (default,)
        self.knobs.append(Knob(name, values, doc))
        self.default[name] = default

    @property
    def size(self) -> int:
        return int(np.prod([len(k.values) for k in self.knobs], dtype=np.int64)) if self.knobs else 1

    def sample(self, rng: np.random.Generator) -> Config:
        """A uniformly random point (rng is passed in: searches are reproducible by seed)."""
        return {k.name: k.values[int(rng.integers(len(k.values)))] for k in self.knobs}

    def __iter__(self) -> Iterator[Config]:
        """Every point, in a fixed order (for grid search)."""
        for flat in range(self.size):
            config: Config = {}
            for knob in reversed(self.knobs):
                flat, i = divmod(flat, len(knob.values))
                config[knob.name] = knob.values[i]
            yield {k.name: config[k.name] for k in self.knobs}

    def restrict(self, fixed: dict) -> "ConfigSpace":
        """The same space with some knobs pinned (e.g. ``{"threads": 1}`` to tune single-threaded)."""
        out = ConfigSpace(self.template, seeds=[{**seed, **fixed} for seed in self.seeds])
        for knob in self.knobs:
            if knob.name in fixed:
                if fixed[knob.name] not in knob.values:
                    raise CodegenError(f"template {self.template}: cannot pin '{knob.name}' to {fixed[knob.name]!r}; "
                                       f"values are {knob.values}")
                out.add(knob.name, (fixed[knob.name],), fixed[knob.name], knob.doc)
            else:
                out.add(knob.name, knob.values, self.default[knob.name], knob.doc)
        return out

    def admit(self, name: str, value: int | str) -> None:
        """Let knob ``name`` take ``value`` too (a thread count the caller asks for beyond the tuned choices)."""
        self.knobs = [Knob(k.name, tuple(dict.fromkeys(k.values + (value,))), k.doc) if k.name == name else k
                      for k in self.knobs]

    def resolve(self, config: Config | None) -> Config:
        """``config`` completed with defaults; unknown knobs or illegal values are a typed error."""
        out = dict(self.default)
        for name, value in (config or {}).items():
            knob = next((k for k in self.knobs if k.name == name), None)
            if knob is None:
                raise CodegenError(f"template {self.template}: unknown knob '{name}'; "
                                   f"knobs are {[k.name for k in self.knobs]}")
            if value not in knob.values:
                raise CodegenError(f"template {self.template}: knob '{name}' = {value!r} is not one of {knob.values}")
            out[name] = value
        return out


def divisors(n: int, limit: int | None = None) -> list[int]:
    return [d for d in range(1, (limit or n) + 1) if n % d == 0]
