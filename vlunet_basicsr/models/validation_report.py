"""What a finished evaluation of one set reports: the log lines, tensorboard scalars, ``metrics.json`` (test
mode), the average over the sets of a round and the degradation types' CSV (`GuidedRestorationModel` calls it)."""
import os.path as osp

from basicsr.utils import get_root_logger
from vlunet_basicsr.models.degradation_report import write_csv
from vlunet_basicsr.models.restoration_metrics import average_over_sets, metric_line, write_metrics_json


class ValidationReports:
    """The reports of a model's evaluations, on rank 0 (the callers gather first).

    Reads from the YAML:
        is_train (bool): Test mode (false) also writes ``results/<name>/metrics.json`` and the types' CSV.
        datasets (dict): The phases ``val*`` (training) or ``test*`` (test mode): how many sets make a round.
        path.results_root (str): Where test mode writes.
    """

    def __init__(self, opt):
        self.opt = opt
        self._set_results = {}  # {iteration: {set: {metric: mean}}} of the round under way

    def metric_values(self, dataset_name, results, counts, best, current_iter, tb_logger):
        """Log one set's metrics (``best``: BaseModel's best results of the set) and add them to tensorboard;
        in test mode add the set to ``metrics.json`` (`write_metrics_json`)."""
        lines = [f'Validation {dataset_name}']
        for metric, value in results.items():
            lines.append(metric_line(metric, value, counts[metric], counts['images'])
                         + f'\tBest: {best[metric]["val"]:.4f} @ {best[metric]["iter"]} iter')
            if tb_logger and value == value:  # not NaN
                tb_logger.add_scalar(f'metrics/{dataset_name}/{metric}', value, current_iter)
        get_root_logger().info('\n'.join(lines))
        if not self.opt['is_train']:
            write_metrics_json(osp.join(self.opt['path']['results_root'], 'metrics.json'), dataset_name, results,
                               counts)

    def average_over_sets(self, dataset_name, results, current_iter, tb_logger):
        """Once every val (or test) set of this round is done, log the metrics averaged over the sets."""
        prefix = 'val' if self.opt['is_train'] else ''
        expected = sum(1 for phase in self.opt.get('datasets', {}) if phase.startswith(prefix) and phase != 'train')
        done = self._set_results.setdefault(current_iter, {})
        done[dataset_name] = dict(results)
        if expected < 2 or len(done) < expected:
            return
        lines = [f'Average over {len(done)} sets ({", ".join(done)})']
        for metric, (value, sets) in average_over_sets(done).items():
            missing = '' if sets == len(done) else f' ({sets} of {len(done)} sets; the others had no image)'
            lines.append(f'\t # {metric}: {value:.4f}{missing}')
            if tb_logger and sets:
                tb_logger.add_scalar(f'metrics/average/{metric}', value, current_iter)
        get_root_logger().info('\n'.join(lines))
        del self._set_results[current_iter]

    def degradation_types(self, types, rows, dataset_name, current_iter, tb_logger):
        """Log a set's type accuracy and mean confidence (`DegradationTypeReport`, its gathered ``rows``), add them
        to tensorboard and, in test mode, write every image's row to ``results/<name>/degradation_types_<set>.csv``.

        Returns:
            dict: The set's figures (`DegradationTypeReport.summary`).
        """
        summary = types.summary(rows)
        get_root_logger().info('\n'.join(types.log_lines(summary)))
        if tb_logger:
            for key, value in (('type_accuracy', summary['accuracy']), ('type_confidence', summary['mean_confidence'])):
                if value is not None:
                    tb_logger.add_scalar(f'metrics/{dataset_name}/{key}', value, current_iter)
        if not self.opt['is_train']:
            write_csv(osp.join(self.opt['path']['results_root'], f'degradation_types_{dataset_name}.csv'), rows)
        return summary
