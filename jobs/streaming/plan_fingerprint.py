"""The identity of the job's stateful operators as Flink will assign them, computed without running it.

Flink SQL sets no operator uids: a job's operator IDs are hashes of the stream graph's shape (each
node's position and what is chained to it), so a new, removed or edited feature can give existing
operators (the Kinesis source with its shard positions, the dedup, other features' windows) new IDs,
and a snapshot restore then fails or drops their state. This module hashes the stream graph Flink
would run (jobs/streaming/stream_graph.py) the way Flink does (StreamGraphHasherV2), then
keeps the operators that hold state, each with its description (an edited aggregate keeps its ID
but not its state layout), plus a digest of each feature's SQL. Equal fingerprints: restoring a
snapshot or checkpoint is safe.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from jobs.definitions.sql_catalog import Feature

# Operators whose state a restore must map: the source (shard positions), the dedup (txids), the
# window aggregates (open windows, their watermark), the fresh slices' totals (OverAggregate) and the
# filesystem sinks (pending files).
_STATEFUL = re.compile(r"^(Source: |Deduplicate|WindowAggregate|OverAggregate|StreamingFileWriter|streaming-writer|"
                       r"compact-coordinator|compact-operator|PartitionCommitter)")
_NODE_NUMBER = re.compile(r"\[\d+\]:?")  # the planner's node numbers shift with unrelated edits


@dataclass(frozen=True)
class Fingerprint:
    operators: tuple[tuple[str, str], ...]  # (operator id as hex, description), sorted
    groups: dict[str, str]                  # feature group -> digest of its rendered SQL

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps([self.operators, sorted(self.groups.items())]).encode()).hexdigest()[:16]

    @property
    def operators_digest(self) -> str:
        return hashlib.sha256(json.dumps(self.operators).encode()).hexdigest()[:16]

    def summary(self) -> dict[str, str]:
        """What a deployment records of it (runtime properties: short strings)."""
        return {"fingerprint": self.digest, "operators": self.operators_digest,
                "groups": ",".join(f"{name}={digest}" for name, digest in sorted(self.groups.items()))}

    def to_json(self) -> dict:
        return {"digest": self.digest, "operators": [list(op) for op in self.operators], "groups": self.groups}

    @classmethod
    def from_json(cls, data: dict) -> "Fingerprint":
        return cls(tuple(tuple(op) for op in data["operators"]), dict(data["groups"]))


@dataclass(frozen=True)
class Change:
    """How the new fingerprint differs from the one of what ran before."""

    operators_changed: tuple[str, ...]  # descriptions of stateful operators gone or new
    added: tuple[str, ...]
    removed: tuple[str, ...]
    edited: tuple[str, ...]

    @property
    def restorable(self) -> bool:
        """Restoring is safe: same operators, and no feature's SQL changed (an edited filter or
        expression can keep the operator's ID and state layout while changing what it means)."""
        return not (self.operators_changed or self.added or self.removed or self.edited)

    def describe(self) -> str:
        if self.restorable:
            return "the stateful operators and the feature SQL are unchanged"
        parts = [f"{kind} {', '.join(names)}" for kind, names in
                 (("added", self.added), ("removed", self.removed), ("edited", self.edited)) if names]
        operators = f"{len(self.operators_changed)} stateful operator(s) get new IDs or state"
        return "; ".join(parts + ([operators] if self.operators_changed else []))


def compare_summary(old: dict[str, str], new: Fingerprint) -> Change:
    """``compare`` against a recorded summary (the operators' descriptions are not recorded)."""
    groups = dict(item.split("=", 1) for item in old.get("groups", "").split(",") if item)
    changed = () if old.get("operators") == new.operators_digest else ("(stateful operators: IDs or state differ)",)
    recorded = Fingerprint((), groups)
    by_groups = compare(recorded, Fingerprint((), new.groups))
    return Change(changed, by_groups.added, by_groups.removed, by_groups.edited)


def compare(old: Fingerprint, new: Fingerprint) -> Change:
    # Operators with a new ID or description; when the new plan only lost some, the lost ones.
    changed = (set(new.operators) - set(old.operators)) or (set(old.operators) - set(new.operators))
    return Change(
        operators_changed=tuple(sorted(description for _, description in changed)),
        added=tuple(sorted(new.groups.keys() - old.groups.keys())),
        removed=tuple(sorted(old.groups.keys() - new.groups.keys())),
        edited=tuple(sorted(name for name in old.groups.keys() & new.groups.keys() if old.groups[name] != new.groups[name])),
    )


def group_digests(features: list[Feature]) -> dict[str, str]:
    return {feature.name: hashlib.sha256(" ".join(feature.query.text.split()).encode()).hexdigest()[:16]
            for feature in features}


def compute(stream_graph, features: list[Feature]) -> Fingerprint:
    """Fingerprint the stateful operators of ``stream_graph`` (Java, see stream_graph.build)."""
    from pyflink.java_gateway import get_gateway

    hasher = get_gateway().jvm.org.apache.flink.streaming.api.graph.StreamGraphHasherV2()
    hashes = hasher.traverseStreamGraphAndGenerateHashes(stream_graph)
    operators = []
    for node in stream_graph.getStreamNodes().toArray():
        if _STATEFUL.match(node.getOperatorName()):
            description = _NODE_NUMBER.sub("", node.getOperatorDescription()).strip()
            operators.append((bytes(hashes.get(node.getId())).hex(), description))
    return Fingerprint(tuple(sorted(operators)), group_digests(features))
