"""Compliance over an archive: exports for auditors, verification, verified deletion at the provider."""
