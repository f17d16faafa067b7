"""Datasets from ``$ANALOGEBL_DATA`` in their official formats, augmentation and batching."""

from analogebl.data.batching import (
    DEFAULT_AUGMENTATION,
    Augmentation,
    iterate_batches,
    num_batches,
)
from analogebl.data.datasets import (
    DATASETS,
    DataFile,
    Dataset,
    data_root,
    load_dataset,
    split_validation,
    verify_checksums,
)

__all__ = [
    "DATASETS",
    "DEFAULT_AUGMENTATION",
    "Augmentation",
    "DataFile",
    "Dataset",
    "data_root",
    "iterate_batches",
    "load_dataset",
    "num_batches",
    "split_validation",
    "verify_checksums",
]
