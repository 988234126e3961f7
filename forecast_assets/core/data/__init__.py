"""Sales data: loading and validation, resampling, scaling, encoding, calendar features, windows."""
