"""The image file extensions read from disk (any case): the datasets, ``basicsr restore`` and its help text."""

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')
