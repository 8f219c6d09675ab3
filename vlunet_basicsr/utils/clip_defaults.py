"""The open_clip model of the guidance encoder when none is named (the paper's)."""

DEFAULT_CLIP_MODEL = 'ViT-B-32'
