"""A round seen from one site: receive and check the global, train locally, export the signed update.

* :mod:`.received` — verify a received global for training (plan, signature, kind, expiry, weights),
  check that a key is a site's and that the dataset was preprocessed as the plan says.
* :mod:`.record` — the typed checkpoint record (``checkpoint.json`` of the checkpoint folder).
* :mod:`.train` — :func:`~fedseg.workflow.site.train.train_local`.
* :mod:`.export` — :func:`~fedseg.workflow.site.export.export_update`, a finished checkpoint signed as
  an update.

The round-0 global is written by :mod:`fedseg.workflow.initial`; a global is taken out to other tools by
:mod:`fedseg.workflow.model_export`.
"""
