"""Write a tiny CSV for this example: data/blobs.csv, six numeric features and a `species` label.

Four Gaussian blobs, 100 rows each. Replace it with your own CSV (numeric feature columns and one
label column) and set `dataset` in workloads.py to "your.csv:<label column>".
"""

import os

import numpy as np


def main(path: str = "data/blobs.csv", per_class: int = 100) -> None:
    rng = np.random.RandomState(0)
    centres = rng.normal(0, 2.5, (4, 6))
    rows = [np.concatenate([centre + rng.normal(0, 1, 6), [k]]) for k, centre in enumerate(centres)
            for _ in range(per_class)]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    header = ",".join([f"f{i}" for i in range(6)] + ["species"])
    np.savetxt(path, np.array(rows), delimiter=",", header=header, comments="", fmt=["%.5f"] * 6 + ["%d"])
    print(f"wrote {len(rows)} rows to {path}")


if __name__ == "__main__":
    main()
