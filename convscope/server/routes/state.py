"""What every router of the explorer reads: the models on offer, the samples and the live jobs."""

from __future__ import annotations

from dataclasses import dataclass

from ..catalog import Catalog
from ..live import Jobs
from ..samples import Samples


@dataclass(frozen=True)
class Explorer:
    """The explorer's state, shared by its routers."""

    catalog: Catalog
    samples: Samples
    jobs: Jobs
