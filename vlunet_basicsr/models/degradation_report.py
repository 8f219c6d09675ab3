"""Which degradation type a text-guided restoration used for each image, and how sure its classifier was.

For an arch whose guidance is the text embedding of a degradation prompt (``guidance_input: 'text_features'``,
VL-UR), validation and testing record per image the type the encoder predicts (the prompt with the highest
softmax of the image-prompt similarities, VL-UR's Eq. 3), that probability (the confidence), and the type the
image was restored with: the prediction, or the type ``val.degradation_type`` gives. Per set the log gives the
accuracy of the predicted type against the dataset's ``label`` (images whose label is not a prompt's index are
left out of it and counted), the mean confidence and how often each type was predicted; in test mode every
image's row goes to ``results/<name>/degradation_types_<set>.csv`` (`write_csv`).
"""
import csv
import os
import os.path as osp

import torch

from vlunet_basicsr.utils.prompts import label_names

#: The columns of ``degradation_types_<set>.csv``, in order.
CSV_COLUMNS = ('image', 'label', 'label_name', 'predicted', 'predicted_name', 'confidence', 'used', 'used_name',
               'used_from')


class DegradationTypeReport:
    """The degradation types of one evaluation set, image by image (see the module docstring).

    Args:
        set_name (str): The set's name (logs, the CSV file name).
        prompts (list[str]): The prompts in label order; types are named by the prompt set's label names when
            ``prompts`` is a known set (CDD-11's folder names, the release's ``noise15``, ...), else by the prompt.
        given (int | None): The label every image is restored with (``val.degradation_type``), or None when each
            image is restored with its predicted type. Default: None.

    Attributes:
        rows (list[dict]): This rank's rows, in the order the images came, keyed by `CSV_COLUMNS`.
    """

    def __init__(self, set_name, prompts, given=None):
        self.set_name = set_name
        self.prompts = list(prompts)
        self.names = list(label_names(self.prompts)) or self.prompts
        self.given = given
        self.rows = []

    def name(self, label):
        """The name of ``label`` ('' for None, the number itself when it is not a prompt's index)."""
        if label is None:
            return ''
        return self.names[label] if 0 <= label < len(self.names) else str(label)

    def add(self, paths, predicted, confidence, used, labels=None):
        """Record one batch.

        Args:
            paths (list[str]): The images' paths (``lq_path``); rows are named by the file name without extension.
            predicted (Tensor): Predicted label per image (B,).
            confidence (Tensor): Softmax probability of the predicted label per image (B,).
            used (Tensor): The label each image was restored with (B,).
            labels (Tensor | list[int] | None): The dataset's label per image, or None when it has none.
        """
        predicted, used = torch.as_tensor(predicted).tolist(), torch.as_tensor(used).tolist()
        confidence = torch.as_tensor(confidence).float().tolist()
        labels = [None] * len(predicted) if labels is None else torch.as_tensor(labels).reshape(-1).tolist()
        if not len(paths) == len(predicted) == len(confidence) == len(used) == len(labels):
            raise ValueError(f'{self.set_name}: a batch of {len(paths)} images came with {len(predicted)} '
                             f'predictions, {len(confidence)} confidences, {len(used)} used types and '
                             f'{len(labels)} labels')
        for path, label, best, probability, chosen in zip(paths, labels, predicted, confidence, used):
            label = None if label is None else int(label)
            self.rows.append({
                'image': osp.splitext(osp.basename(path))[0], 'label': label, 'label_name': self.name(label),
                'predicted': int(best), 'predicted_name': self.name(int(best)), 'confidence': float(probability),
                'used': int(chosen), 'used_name': self.name(int(chosen)),
                'used_from': 'predicted' if self.given is None else 'given'})

    def gather(self, evaluation):
        """Every rank's rows in the set's order (call it on every rank; `ShardedEvaluation.gather`).

        Rank r of a sharded evaluation took images r, r + world_size, ... one at a time, so its i-th row is the
        set's image r + i * world_size; alone, the rows are already in the loader's order.
        """
        shards = evaluation.gather(self.rows)
        if len(shards) == 1:
            return list(shards[0])
        placed = [(rank + i * len(shards), row) for rank, rows in enumerate(shards) for i, row in enumerate(rows)]
        return [row for _, row in sorted(placed, key=lambda pair: pair[0])]

    def summary(self, rows):
        """The set's figures from all its ``rows``.

        Returns:
            dict: ``images``; ``labelled`` (rows whose label is a prompt's index) and ``correct`` (of those, how
            many were predicted right); ``accuracy`` (None without labelled rows); ``mean_confidence`` (None
            without rows); ``predicted`` ({type name: images}, in label order) and ``used`` (likewise).
        """
        labelled = [row for row in rows if row['label'] is not None and 0 <= row['label'] < len(self.prompts)]
        correct = sum(row['predicted'] == row['label'] for row in labelled)

        def counts(key):
            found = [row[key] for row in rows]
            return {self.name(label): found.count(label) for label in sorted(set(found))}

        return {'images': len(rows), 'labelled': len(labelled), 'correct': correct,
                'accuracy': correct / len(labelled) if labelled else None,
                'mean_confidence': sum(row['confidence'] for row in rows) / len(rows) if rows else None,
                'predicted': counts('predicted'), 'used': counts('used')}

    def log_lines(self, summary):
        """The log lines of a `summary`."""
        how = 'the predicted type' if self.given is None else f'the given type {self.name(self.given)}'
        lines = [f'Degradation types {self.set_name} ({summary["images"]} images, restored with {how})']
        if summary['accuracy'] is not None:
            unlabelled = summary['images'] - summary['labelled']
            lines.append(f'\t # type_accuracy: {summary["accuracy"]:.4f} ({summary["correct"]} of '
                         f'{summary["labelled"]} images'
                         + (f'; {unlabelled} without a label of the prompts left out)' if unlabelled else ')'))
        else:
            lines.append('\t # type_accuracy: - (no image has a label of the prompts)')
        if summary['mean_confidence'] is not None:
            lines.append(f'\t # type_confidence: {summary["mean_confidence"]:.4f} (mean softmax probability of the '
                         'predicted type)')
        lines.append('\t predicted: ' + ', '.join(f'{name} {n}' for name, n in summary['predicted'].items()))
        return lines


def write_csv(path, rows):
    """Write ``rows`` (`DegradationTypeReport` rows) to ``path`` with the header `CSV_COLUMNS`."""
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    with open(path, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, 'label': '' if row['label'] is None else row['label'],
                             'confidence': f'{row["confidence"]:.6f}'})
