"""Layer 3, the tools: option pipeline, checkpoint conversion, restore, export and runtimes, serve, compare,
benchmark, and basicsr's train/test pipelines with this plugin (`pipelines`). They use the core (archs, data,
losses, metrics, models) and the utilities; nothing below imports them."""
