"""Image classification on any image backbone of the registry."""
