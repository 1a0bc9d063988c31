"""Getting events in: Segment-spec validation, identity resolution, bulk import."""

from clm.ingest.schemas import IngestResult, Rejected
from clm.ingest.service import ingest

__all__ = ["IngestResult", "Rejected", "ingest"]
