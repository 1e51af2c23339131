"""Moved: the training sets are jobs.reads.training."""

raise ImportError("jobs.training moved: `from jobs.reads.training import OfflineStore`")
