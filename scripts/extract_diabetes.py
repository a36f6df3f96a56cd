#!/usr/bin/python3
"""Writes docs/examples/diabetes_X.csv and diabetes_y.csv from the diabetes data
set that Debian's python3-sklearn ships (Efron, Hastie, Johnstone and
Tibshirani 2004, "Least Angle Regression"; 442 patients, 10 baseline
variables, a measure of disease progression one year later; scikit-learn's copy
is under the BSD-3-Clause licence, see /usr/share/doc/python3-sklearn/copyright).

The ten columns are standardised (mean 0, standard deviation 1 with ddof = 0),
as scikit-learn's load_diabetes does up to its factor sqrt(n); the labels are
left as they are. Only numpy is needed; sklearn itself is not imported.

Usage: scripts/extract_diabetes.py [SKLEARN_DATA_DIR]
  default /usr/lib/python3/dist-packages/sklearn/datasets/data (apt-get install
  python3-sklearn; or dpkg-deb -x of its .deb and the folder inside).
"""
import gzip
import pathlib
import sys

import numpy as np

src = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "/usr/lib/python3/dist-packages/sklearn/datasets/data")
out = pathlib.Path(__file__).resolve().parents[1] / "docs" / "examples"
X = np.loadtxt(gzip.open(src / "diabetes_data_raw.csv.gz"))
y = np.loadtxt(gzip.open(src / "diabetes_target.csv.gz"))
assert X.shape == (442, 10) and y.shape == (442,)
X = (X - X.mean(axis=0)) / X.std(axis=0)
names = "age,sex,bmi,bp,s1,s2,s3,s4,s5,s6"
np.savetxt(out / "diabetes_X.csv", X, delimiter=",", header=names, comments="", fmt="%.17g")
np.savetxt(out / "diabetes_y.csv", y, header="progression", comments="", fmt="%.17g")
print(f"wrote {out / 'diabetes_X.csv'} ({X.shape[0]} x {X.shape[1]}) and {out / 'diabetes_y.csv'}")
