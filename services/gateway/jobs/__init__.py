"""Background jobs: a completion with no client attached, its status read from the bus."""

from services.gateway.jobs.models import JobRecord, NewJob
from services.gateway.jobs.runtime import BackgroundJobs

__all__ = ["BackgroundJobs", "JobRecord", "NewJob"]
