"""``basicsr compare``: every system trained on the same data and tested on the same sets, in one report.

- `compare_file`: the compare file's declared keys and checks;
- `plan`: each system's train and test options (the shared test sets, the weights to test);
- `stages`: the train and test runs, each a BasicSR pipeline in its own process (`pipeline_run`);
- `measure`: parameters, MACs, training-step and inference time, degradation accuracy, measured here;
- `report`, `figures`: report.json, report.md, the PSNR chart and the image grids;
- `command`: the command itself.
"""
