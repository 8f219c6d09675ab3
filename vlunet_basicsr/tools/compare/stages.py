"""The train and test runs of a system, each a ``basicsr train|test`` pipeline in its own process."""
import re
import subprocess
import sys
import time

#: A Python traceback's last line: the exception, with its message on the following lines.
_EXCEPTION_LINE = re.compile(r'^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b')


class StageFailed(RuntimeError):
    """A run exited with an error; the message is its exception (from the log), the log's path follows."""


def error_of_log(text, lines=20):
    """The exception at the end of a run's output (from its last exception line), else its last ``lines``."""
    tail = [line for line in text.rstrip().splitlines() if line.strip()]
    for index in range(len(tail) - 1, -1, -1):
        if _EXCEPTION_LINE.match(tail[index]):
            return '\n'.join(tail[index:])
    return '\n'.join(tail[-lines:])


def run_pipeline(command, opt_path, root, log_path):
    """Run ``basicsr <command> -opt <opt_path>`` with its folders under ``root``; its output goes to ``log_path``.

    Returns:
        float: Wall-clock seconds of the run.

    Raises:
        StageFailed: The run exited with an error.
    """
    argv = [sys.executable, '-m', 'vlunet_basicsr.tools.compare.pipeline_run', root, command, opt_path]
    start = time.time()
    with open(log_path, 'w') as log:
        log.write('$ ' + ' '.join(argv) + '\n')
        log.flush()
        returncode = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT).returncode
    if returncode != 0:
        with open(log_path) as log:
            raise StageFailed(f'{error_of_log(log.read())}\n(exit code {returncode}; full output: {log_path})')
    return time.time() - start
