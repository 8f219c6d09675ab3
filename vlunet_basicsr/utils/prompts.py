"""The degradation prompts of the release's adapter tuning, in label order (label i <-> prompt i)."""

DEGRADATION_PROMPTS = (
    'image with noise',  # 0: Gaussian noise, sigma 15
    'image with many noise',  # 1: sigma 25
    'image with large amount of noise',  # 2: sigma 50
    'image with haze',  # 3
    'image with rain',  # 4
    'image with blur',  # 5
    'image with low light',  # 6
)
