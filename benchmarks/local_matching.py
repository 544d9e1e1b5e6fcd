"""Local matching throughput per matcher and keypoint budget (extraction and matching separately).

python -m benchmarks.local_matching [--pairs 20]
"""

from __future__ import annotations

import argparse
import io
import time

from PIL import Image

from catalog import synthetic
from ml_service import imaging, local_features


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=20)
    args = parser.parse_args()
    images = []
    for i in range(args.pairs + 1):
        photo = synthetic.render(synthetic.make_pattern(i % 3), seed=i, size=(1280, 960))
        images.append(imaging.crop(Image.open(io.BytesIO(photo.jpeg)).convert("RGB"), photo.box))
    print(
        f"{'matcher':<10}{'keypoints':>10}{'side':>6}{'extract ms':>12}"
        f"{'pairs/s':>10}{'x 1024':>8}{'inliers':>9}"
    )
    for name in sorted(local_features.MATCHERS):
        base = None
        for budget, side in ((512, 512), (1024, 768), (2048, 1024)):
            matcher = (
                local_features.SiftMatcher(n_features=budget)
                if name == "sift"
                else local_features.MATCHERS[name](max_keypoints=budget)  # type: ignore[call-arg]
            )
            matcher.max_side = side
            start = time.perf_counter()
            feats = [matcher.extract(c) for c in images]
            extract_ms = 1000 * (time.perf_counter() - start) / len(images)
            start = time.perf_counter()
            inliers = [matcher.match(feats[i], feats[i + 1]).inliers for i in range(args.pairs)]
            rate = args.pairs / (time.perf_counter() - start)
            base = rate if budget == 1024 else base
            print(
                f"{name:<10}{budget:>10}{side:>6}{extract_ms:>12.1f}{rate:>10.1f}"
                f"{'' if base is None else f'{rate / base:.2f}':>8}{sum(inliers) / len(inliers):>9.1f}"
            )


if __name__ == "__main__":
    main()
