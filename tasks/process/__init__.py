"""Process tasks: ``luigi --module tasks.process Process --processor NAME --collection ID
--start ISO --stop ISO``.

:class:`ProcessWindow` requires the :class:`~tasks.stage.StageWindow` of its inputs and is
complete when every product of the window's staged inputs is in the output collection,
made by this processor version (read from the catalog).
"""

from __future__ import annotations

import luigi

from rspy_batch.catalog.storage import Store, open_store
from rspy_batch.mapping.common import iso
from rspy_batch.orchestration.leases import window_lease
from rspy_batch.processing.registry import get_processor
from rspy_batch.processing.run import (
    STAGE,
    ProcessingSettings,
    output_collection_id,
    process_window,
    window_processed,
)
from rspy_batch.windows import split_windows
from tasks.lease import Leased
from tasks.params import CollectionWindow
from tasks.stage import StageWindow, StagingParameters


class ProcessingParameters:
    processor = luigi.Parameter(description="registered processor name (rspy-batch processors)")
    output_collection = luigi.OptionalParameter(default=None,
                                                description="default: <collection>-<processor>")
    params = luigi.DictParameter(default={}, description="processor parameters (JSON object)")
    version_of = luigi.OptionalParameter(
        default=None, description="series id: the output collection is one version of it, "
        "linked to the others through the version extension")
    zarr_format = luigi.IntParameter(default=2)
    dask_scheduler = luigi.OptionalParameter(default=None, significant=False,
                                             description="Dask scheduler address")

    def settings(self) -> ProcessingSettings:
        return ProcessingSettings(
            products=self.staging, output_collection=self.output_collection,
            params=dict(self.params), zarr_format=self.zarr_format,
            scheduler=self.dask_scheduler, version_of=self.version_of)

    def processing_params(self) -> dict:
        return {"processor": self.processor, "output_collection": self.output_collection,
                "params": self.params, "zarr_format": self.zarr_format,
                "dask_scheduler": self.dask_scheduler, "version_of": self.version_of}


class ProcessWindow(Leased, ProcessingParameters, StagingParameters, CollectionWindow,
                    luigi.Task):
    """Make every product of one window of an input collection."""

    def requires(self) -> StageWindow:
        return StageWindow(**self.window_params(), staging=self.staging,
                           transfers=self.transfers, order_timeout=self.order_timeout)

    def complete(self) -> bool:
        return window_processed(open_store(self.catalog), get_processor(self.processor),
                                self.collection, *self.window(), self.settings())

    def output_collection_id(self) -> str:
        return self.output_collection or output_collection_id(self.collection,
                                                              get_processor(self.processor))

    def lease(self) -> tuple[Store, str]:
        return open_store(self.catalog), window_lease(STAGE, self.output_collection_id(),
                                                      self.start, self.stop)

    def work(self) -> None:
        process_window(get_processor(self.processor), self.template(), *self.window(),
                       store=open_store(self.catalog), settings=self.settings(),
                       progress=lambda done, total: self.set_progress_percentage(
                           100 * done // max(total, 1)))


class Process(ProcessingParameters, StagingParameters, CollectionWindow, luigi.WrapperTask):
    """Process ``[start, stop)`` of a collection, window by window (staging first)."""

    def requires(self) -> list[ProcessWindow]:
        params = {**self.window_params(), **self.processing_params(), "staging": self.staging,
                  "transfers": self.transfers, "order_timeout": self.order_timeout}
        return [ProcessWindow(**{**params, "start": iso(s), "stop": iso(e)})
                for s, e in split_windows(*self.window(), self.template().window_days)]
