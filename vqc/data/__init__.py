"""Reading, preprocessing, caching and serving image data sets."""
