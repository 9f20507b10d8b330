"""Files shipped with the package (the example configuration)."""
