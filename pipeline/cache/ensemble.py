"""Teacher ensembles: several teachers' logits for one corpus, kept apart, combined only when read.

A cache folder ``teacher/<input>/`` holds the main teacher's cache (ids, hidden states, logits).
Each further teacher of ``teacher.ensemble`` has a logits-only cache of the same corpus in
``members/<name>/`` (a complete cache: manifest, shards, card; readable on its own), and
``ensemble.json`` lists the members the job names: their fingerprints (weights SHA-256, tokenizer,
label order) and the cache key of their cache. So:

- the average is a view: every teacher's raw logits stay on disk;
- adding a teacher computes its cache only; the other caches are kept as they are;
- removing one rewrites ``ensemble.json`` only (its folder stays, and is reused if it comes back).

Combining (:func:`combine`, for readers and the student stage): ``prob_mean`` is the weighted
arithmetic mean of the teachers' probabilities at a temperature T, returned as logits
``T * log(p_mean)`` so that ``softmax(logits / T)`` is exactly that mean; ``logit_mean`` is the
weighted mean of the logits (the normalised geometric mean of the probabilities). A one-output
(regression) teacher's predictions are averaged either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from .. import storage
from .reader import CacheError, TeacherCache, open_cache

ENSEMBLE_NAME = "ensemble.json"
MAIN = "main"  # the name of the cache's own teacher among the members
COMBINE = ("prob_mean", "logit_mean")


def combine(
    logits: np.ndarray, how: str = "prob_mean", weights: Sequence[float] | None = None, temperature: float = 1.0
) -> np.ndarray:
    """[teachers, rows, outputs] logits → [rows, outputs] logits of the ensemble (module doc)."""
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 3 or not z.shape[0]:
        raise ValueError(f"expected [teachers, rows, outputs] logits, got shape {z.shape}")
    w = np.full(z.shape[0], 1.0 / z.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (z.shape[0],) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be {z.shape[0]} non-negative numbers with a positive sum, got {weights}")
    w = w / w.sum()
    if how not in COMBINE:
        raise ValueError(f"unknown combination {how!r}; expected one of {COMBINE}")
    if how == "logit_mean" or z.shape[2] == 1:
        return np.einsum("t,trc->rc", w, z).astype(np.float32)
    t = float(temperature)
    scaled = z / t
    scaled -= scaled.max(axis=2, keepdims=True)
    p = np.exp(scaled)
    p /= p.sum(axis=2, keepdims=True)
    mean = np.einsum("t,trc->rc", w, p)
    with np.errstate(divide="ignore"):
        return (t * np.log(mean)).astype(np.float32)


@dataclass
class Member:
    name: str
    cache: TeacherCache


class Ensemble:
    """The main cache of a folder and the member caches its ``ensemble.json`` names."""

    def __init__(self, path: str, verify: str = "checksum", main: TeacherCache | None = None):
        self.path = path.rstrip("/")
        main = main or open_cache(self.path, verify=verify)  # (an opened, validated main cache)
        self.members: dict[str, Member] = {MAIN: Member(MAIN, main)}
        listed = storage.join(self.path, ENSEMBLE_NAME)
        if storage.exists(listed):
            try:
                listing = storage.read_json(listed)
                entries = listing["members"] if isinstance(listing, dict) else None
                if not isinstance(entries, list):
                    raise ValueError("no members list")
            except (ValueError, OSError, KeyError, TypeError) as exc:
                raise CacheError(self.path, f"{ENSEMBLE_NAME} is unreadable: {exc}") from None
            for entry in entries:
                name = entry["name"]
                if name == MAIN:
                    continue
                cache = open_cache(storage.join(self.path, entry["path"]), verify=verify)
                if cache.manifest["cache_key"] != entry["cache_key"]:
                    raise CacheError(cache.path, f"cache key differs from the one {ENSEMBLE_NAME} records")
                check_member(main, cache)
                self.members[name] = Member(name, cache)

    @property
    def main(self) -> TeacherCache:
        return self.members[MAIN].cache

    @property
    def names(self) -> list[str]:
        return list(self.members)

    def logits(self, names: Sequence[str] | None = None) -> np.ndarray:
        """[teachers, rows, outputs] float32, row i of every teacher at index i (whole corpus in
        memory: rows x outputs x 4 bytes per teacher)."""
        chosen = list(names or self.names)
        unknown = [n for n in chosen if n not in self.members]
        if unknown:
            raise CacheError(self.path, f"no teacher {unknown} in the ensemble; it has {self.names}")
        return np.stack([logits_by_row(self.members[n].cache) for n in chosen])

    def read_table(self, columns: Sequence[str] | None = None, names: Sequence[str] | None = None) -> pa.Table:
        """The main cache's rows (``columns``; ``row`` always) with each further teacher's logits
        joined by row as ``logits_<name>`` (every member by default)."""
        wanted = None if columns is None else list(dict.fromkeys(["row", *columns]))
        table = self.main.read_table(wanted)
        rows = table.column("row").to_numpy()
        for name in names if names is not None else self.names[1:]:
            values = self.logits([name])[0][rows]
            flat = pa.array(values.reshape(-1), pa.float32())
            table = table.append_column(f"logits_{name}", pa.FixedSizeListArray.from_arrays(flat, values.shape[1]))
        return table


def logits_by_row(cache: TeacherCache) -> np.ndarray:
    """A cache's logits [rows, outputs], ordered by the ``row`` column."""
    table = cache.read_table(columns=["row", "logits"])
    rows = table.column("row").to_numpy()
    values = table.column("logits").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    out = np.empty((cache.num_rows, len(cache.labels)), dtype=np.float32)
    out[rows] = values.reshape(len(rows), -1)
    return out


def check_member(main: TeacherCache, member: TeacherCache) -> None:
    """A member must read the same corpus, row for row, and predict the same labels in the same order."""
    if member.manifest["labels"] != main.manifest["labels"]:
        raise CacheError(
            member.path, f"labels {member.manifest['labels']} differ from the main teacher's {main.manifest['labels']}"
        )
    ours, theirs = main.manifest["teacher"].get("id2label"), member.manifest["teacher"].get("id2label")
    if ours and theirs and ours != theirs:
        raise CacheError(member.path, f"the teacher's label order {theirs} differs from the main teacher's {ours}")
    if member.manifest["input"] != main.manifest["input"]:
        raise CacheError(member.path, "made from other input files than the main cache")
    if member.num_rows != main.num_rows:
        raise CacheError(member.path, f"{member.num_rows} rows, the main cache {main.num_rows}")


def member_entry(name: str, relpath: str, cache: TeacherCache) -> dict:
    """A member's line in ``ensemble.json``: its fingerprint and where its cache is."""
    teacher = cache.manifest["teacher"]
    return {
        "name": name,
        "path": relpath,
        "cache_key": cache.manifest["cache_key"],
        "model": teacher.get("model"),
        "weights_sha256": teacher.get("weights_sha256"),
        "finetune_seed": teacher.get("finetune_seed"),
        "tokenizer_sha256": cache.manifest["tokenizer"].get("sha256"),
        "labels": cache.manifest["labels"],
        "column": f"logits_{name}",
    }


def write_ensemble(folder: str, members: Sequence[str]) -> dict | None:
    """List ``members`` (their caches finished under ``folder``/members/) in ``ensemble.json``, each
    checked against the main cache; no members: the file is removed (one teacher again)."""
    path = storage.join(folder, ENSEMBLE_NAME)
    if not members:
        storage.delete_if_exists(path)
        return None
    main = open_cache(folder, verify="footer")
    entries = [member_entry(MAIN, ".", main)]
    for name in members:
        cache = open_cache(storage.join(folder, "members", name), verify="footer")
        check_member(main, cache)
        entries.append(member_entry(name, f"members/{name}", cache))
    listing = {"format": "kd-teacher-ensemble", "version": 1, "labels": main.labels, "members": entries}
    storage.write_json(path, listing)
    return listing


def open_ensemble(path: str, verify: str = "checksum") -> Ensemble:
    return Ensemble(path, verify=verify)
