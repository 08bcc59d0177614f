"""Datasets: the embedded MNIST, standard IDX files, subsets and splits."""

from prunelab.data.datasets import Dataset, load_dataset, stratified_subset, validation_split
from prunelab.data.idx import read_idx

__all__ = ["Dataset", "load_dataset", "read_idx", "stratified_subset", "validation_split"]
