"""Write a tiny image folder for this example: data/shapes/{train,test}/<class>/*.png.

Three classes of 24x20 RGB images (a bright bar, a square, a cross on noise), 60 training and 20
test images per class: small enough for CI, learnable in a few epochs. Replace it with your own
folder (one sub-folder per class, with or without train/ and test/) and set `dataset` in workloads.py.
"""

import os

import numpy as np
from PIL import Image

CLASSES = ("bar", "square", "cross")
HEIGHT, WIDTH = 24, 20


def image(kind: str, rng: np.random.RandomState) -> np.ndarray:
    pixels = rng.randint(0, 90, (HEIGHT, WIDTH, 3)).astype(np.uint8)
    r, c = rng.randint(4, HEIGHT - 8), rng.randint(4, WIDTH - 8)
    colour = rng.randint(150, 256, 3)
    if kind == "bar":
        pixels[r:r + 3, 2:WIDTH - 2] = colour
    elif kind == "square":
        pixels[r:r + 6, c:c + 6] = colour
    else:
        pixels[r + 2, c - 2:c + 6] = colour
        pixels[r - 2:r + 6, c + 2] = colour
    return pixels


def main(root: str = "data/shapes", n_train: int = 60, n_test: int = 20) -> None:
    rng = np.random.RandomState(0)
    for split, n in (("train", n_train), ("test", n_test)):
        for kind in CLASSES:
            folder = os.path.join(root, split, kind)
            os.makedirs(folder, exist_ok=True)
            for i in range(n):
                Image.fromarray(image(kind, rng)).save(os.path.join(folder, f"{i:03d}.png"))
    print(f"wrote {len(CLASSES) * (n_train + n_test)} images to {root}/")


if __name__ == "__main__":
    main()
