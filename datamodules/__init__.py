"""LightningDataModules of the collection, one a file, over one in-memory base."""

from datamodules.animal_faces import AnimalFacesDataModule
from datamodules.base import BatchTensorDataset, InMemoryDataModule
from datamodules.fashion_mnist import FashionMNISTDataModule
from datamodules.image_folder import ImageFolderDataModule
from datamodules.toy_classification import ToyClassificationDataModule
from datamodules.toy_regression import ToyRegressionDataModule

__all__ = ["AnimalFacesDataModule", "BatchTensorDataset", "FashionMNISTDataModule", "ImageFolderDataModule",
           "InMemoryDataModule", "ToyClassificationDataModule", "ToyRegressionDataModule"]
