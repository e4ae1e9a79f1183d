"""Cluster layout: which nodes hold which of the 256 partitions (design §6).

Pure functions of data: `assignment` computes an optimal ring, `version` is one applied
layout version with its invariants, `history` is the gossiped CRDT of live versions, update
trackers and staged changes. The async layout manager (gossip, persistence) lives elsewhere
and calls these.
"""

from .assignment import (
    Assignment,
    compute_assignment,
    format_bytes,
    optimal_partition_size,
    partition_size_feasible,
)
from .history import (
    OLD_VERSIONS_MAX,
    VERSION_CURRENT,
    VERSION_DRAINING,
    VERSION_HISTORICAL,
    LayoutHistory,
    LayoutStaging,
    MergeReport,
    UpdateTrackers,
)
from .version import (
    MAX_STORAGE_NODES,
    N_PARTITIONS,
    PARTITION_BITS,
    LayoutError,
    LayoutParameters,
    LayoutVersion,
    NodeRole,
    effective_zone_redundancy,
    is_valid_node_id,
    partition_of,
    short_id,
)

__all__ = [
    "MAX_STORAGE_NODES",
    "N_PARTITIONS",
    "OLD_VERSIONS_MAX",
    "PARTITION_BITS",
    "VERSION_CURRENT",
    "VERSION_DRAINING",
    "VERSION_HISTORICAL",
    "Assignment",
    "LayoutError",
    "LayoutHistory",
    "LayoutParameters",
    "LayoutStaging",
    "LayoutVersion",
    "MergeReport",
    "NodeRole",
    "UpdateTrackers",
    "compute_assignment",
    "effective_zone_redundancy",
    "format_bytes",
    "is_valid_node_id",
    "optimal_partition_size",
    "partition_of",
    "partition_size_feasible",
    "short_id",
]
