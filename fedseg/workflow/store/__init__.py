"""Unattended rounds over a shared store (a folder, SFTP or S3): the store, its layout and the loops."""

from fedseg.workflow.store.backend import Retry, Store, open_store
from fedseg.workflow.store.location import Backend, Location, parse_location, redact

__all__ = ["Backend", "Location", "Retry", "Store", "open_store", "parse_location", "redact"]
