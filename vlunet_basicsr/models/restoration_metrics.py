"""Metrics of restored images: per image, per set (with the number of images each metric averaged), over sets."""
import json
import math
import os.path as osp

import torch

from basicsr.metrics import calculate_metric
from basicsr.utils import get_root_logger, tensor2img
from vlunet_basicsr.metrics.protocol_metric import FLOAT_METRICS

#: Key of the image counts in each set's entry of metrics.json (no metric may take this name).
COUNTS_KEY = 'counts'


class ImageMetrics:
    """Sums and image counts of the ``val.metrics`` of one set, image by image.

    ``calculate_psnr_float`` / ``calculate_ssim_float`` get float32 HxWx3 RGB arrays in [0, 1]; every other
    metric gets 8-bit BGR images as in BasicSR. A metric that cannot be computed for an image (it raises
    ValueError or ArithmeticError, or returns NaN; e.g. SSIM's 7x7 window on a 5x5 image) is logged as a
    warning naming the image, the set, the metric and the reason, and that image is left out of that
    metric's average only.

    Args:
        metrics_opt (dict): ``val.metrics`` ({name: {type, ...}}).
        set_name (str): The set's name, for warnings.
    """

    def __init__(self, metrics_opt, set_name):
        if COUNTS_KEY in metrics_opt:
            raise ValueError(f"val.metrics: '{COUNTS_KEY}' is reserved (metrics.json keeps the image counts there)")
        self.metrics_opt = dict(metrics_opt)
        self.set_name = set_name
        # row 0: sums per metric, row 1: images per metric; the last column counts all images
        self.totals = torch.zeros(2, len(self.metrics_opt) + 1, dtype=torch.float64)
        self.left_out = []  # the warnings, for rank 0 to log those of the other ranks

    def add(self, image_name, output, gt=None):
        """Count one restored image (CHW float tensor on the CPU) and, with its ``gt``, its metrics."""
        self.totals[:, -1] += 1
        if gt is None or not self.metrics_opt:
            return
        images = {'8bit': {'img': tensor2img([output]), 'img2': tensor2img([gt])},
                  'float': {'img': output.clamp(0, 1).permute(1, 2, 0).numpy(),
                            'img2': gt.clamp(0, 1).permute(1, 2, 0).numpy()}}
        for j, (name, metric_opt) in enumerate(self.metrics_opt.items()):
            kind = 'float' if metric_opt['type'] in FLOAT_METRICS else '8bit'
            try:
                value = float(calculate_metric(images[kind], metric_opt))
            except (ValueError, ArithmeticError) as error:
                self._left_out(image_name, name, f'{type(error).__name__}: {error}')
                continue
            if math.isnan(value):
                self._left_out(image_name, name, 'the result is NaN')
                continue
            self.totals[0, j] += value
            self.totals[1, j] += 1

    def _left_out(self, image_name, metric, reason):
        message = (f'{self.set_name}: metric {metric} cannot be computed for image {image_name} ({reason}); the '
                   f'image is left out of the {metric} average.')
        self.left_out.append(message)
        get_root_logger().warning(message)

    def results(self, totals):
        """(means, counts) from reduced ``totals``: {metric: mean (NaN without images)}, {'images': n, metric: n}."""
        means, counts = {}, {'images': int(totals[1, -1])}
        for j, name in enumerate(self.metrics_opt):
            count = int(totals[1, j])
            means[name] = totals[0, j].item() / count if count else float('nan')
            counts[name] = count
        return means, counts


def metric_line(name, value, count, total):
    """``\\t # psnr: 30.1234 (5 images)``, with how many images the metric averaged when some were left out."""
    images = f'{count} images' if count == total else f'{count} of {total} images'
    return f'\t # {name}: {value:.4f} ({images})'


def write_metrics_json(path, set_name, means, counts):
    """Add one set to ``metrics.json``: ``{set: {metric: mean, ..., 'counts': {'images': n, metric: n}}}``
    (a metric with no image is written as null)."""
    results = json.load(open(path)) if osp.isfile(path) else {}
    entry = {name: (None if math.isnan(value) else value) for name, value in means.items()}
    entry[COUNTS_KEY] = dict(counts)
    results[set_name] = entry
    with open(path, 'w') as f:
        json.dump(results, f, indent=1)


def average_over_sets(set_results):
    """{metric: (mean over the sets that have it, number of such sets)} from {set: {metric: mean}}."""
    averages = {}
    metrics = next(iter(set_results.values()), {})
    for metric in metrics:
        values = [r[metric] for r in set_results.values() if not math.isnan(r[metric])]
        averages[metric] = (sum(values) / len(values) if values else float('nan'), len(values))
    return averages
