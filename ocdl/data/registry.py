"""The named datasets: what their files are, how to check them, and where to download them.

Each :class:`NamedDataset` lists the files that make it up with their SHA-256. For MNIST and
Fashion-MNIST the digest is that of the *decompressed* IDX content (mirrors and distributions
re-gzip the files, so the ``.gz`` bytes differ while the content is the official one). For
CIFAR-10 the digest is that of the official ``cifar-10-python.tar.gz`` archive.

Download sources are in :data:`MIRRORS` (tried in order); tests patch it, and users override it
with ``OCDL_DATA_URL_<NAME>`` (the name upper-cased, ``-`` → ``_``, e.g. ``OCDL_DATA_URL_MNIST``;
several base URLs may be separated by spaces or commas).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")


@dataclass(frozen=True)
class NamedDataset:
    """A dataset known by name.

    kind: ``idx`` (four gzip'd IDX files), ``cifar`` (official python batches, or an image
      folder tree / tar of one), or ``embedded`` (shipped inside the package).
    sha256: expected digests by file name (decompressed content for IDX files).
    sizes: samples in the official (train, test) sets.
    default_split: the paper's (train, valid) sizes carved from the official train set.
    apt: a Debian package that installs the files under ``/usr/share/datasets``, if any.
    """

    name: str
    title: str
    kind: str
    classes: tuple[str, ...]
    sample_shape: tuple[int, ...]
    sizes: tuple[int, int]
    default_split: tuple[int, int]
    sha256: dict[str, str] = field(default_factory=dict)
    download_files: tuple[str, ...] = ()
    apt: str | None = None
    license: str = ""


DATASETS: dict[str, NamedDataset] = {
    "mnist": NamedDataset(
        name="mnist", title="MNIST handwritten digits", kind="idx",
        classes=tuple(str(i) for i in range(10)), sample_shape=(1, 28, 28),
        sizes=(60000, 10000), default_split=(55000, 5000),
        sha256={
            "train-images-idx3-ubyte":
                "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "train-labels-idx1-ubyte":
                "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "t10k-images-idx3-ubyte":
                "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "t10k-labels-idx1-ubyte":
                "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
        download_files=tuple(f + ".gz" for f in IDX_FILES.values()),
        license="CC BY-SA 3.0 (Y. LeCun, C. Cortes, C. J. C. Burges)"),
    "fashion-mnist": NamedDataset(
        name="fashion-mnist", title="Fashion-MNIST (Zalando)", kind="idx",
        classes=FASHION_CLASSES, sample_shape=(1, 28, 28),
        sizes=(60000, 10000), default_split=(55000, 5000),
        sha256={
            "train-images-idx3-ubyte":
                "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte":
                "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte":
                "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte":
                "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
        download_files=tuple(f + ".gz" for f in IDX_FILES.values()),
        apt="dataset-fashion-mnist", license="MIT (Zalando SE)"),
    "cifar-10": NamedDataset(
        name="cifar-10", title="CIFAR-10 tiny images", kind="cifar",
        classes=CIFAR10_CLASSES, sample_shape=(3, 32, 32),
        sizes=(50000, 10000), default_split=(45000, 5000),
        sha256={"cifar-10-python.tar.gz":
                "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"},
        download_files=("cifar-10-python.tar.gz",),
        license="none published (A. Krizhevsky, 2009)"),
    "mnist-subset": NamedDataset(
        name="mnist-subset", title="MNIST subset embedded in ocdl (8000 train + 2000 test)",
        kind="embedded", classes=tuple(str(i) for i in range(10)), sample_shape=(1, 28, 28),
        sizes=(8000, 2000), default_split=(7000, 1000),
        license="CC BY-SA 3.0 (Y. LeCun, C. Cortes, C. J. C. Burges)"),
}

#: Base URLs tried in order when a named dataset is missing (file names are appended).
MIRRORS: dict[str, list[str]] = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ],
    "fashion-mnist": [
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
    ],
    "cifar-10": ["https://www.cs.toronto.edu/~kriz/"],
}


def url_env_var(name: str) -> str:
    """The environment variable that overrides the download base URL of ``name``."""
    return "OCDL_DATA_URL_" + name.upper().replace("-", "_")


def mirrors_for(name: str) -> list[str]:
    """Base URLs to download ``name`` from: ``$OCDL_DATA_URL_<NAME>`` if set, else :data:`MIRRORS`."""
    env = os.environ.get(url_env_var(name), "").replace(",", " ").split()
    bases = env or list(MIRRORS.get(name, []))
    return [b if b.endswith("/") else b + "/" for b in bases]
