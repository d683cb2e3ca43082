"""Preprocessing, the composition that turns raw scans into a site dataset (``fedseg preprocess``).

:mod:`~fedseg.workflow.preprocess.case` runs the imaging steps on one raw case (read, reorient, register,
resample, skull-strip, normalize, crop, QC); :mod:`~fedseg.workflow.preprocess.build` discovers the cases,
decides the label convention over the whole dataset, runs the cases (in processes with ``--jobs``), assigns
splits and writes ``dataset.json``.
"""
