"""fedseg.inference: using a verified global model on scans (DESIGN.md §5 "Inference").

Modules (import what you need; nothing heavy is imported here):

* :mod:`~fedseg.inference.sliding_window`  Gaussian-blended sliding-window prediction, mirroring TTA
* :mod:`~fedseg.inference.regions`         WT/TC/ET probabilities -> nested labels, conventions
* :mod:`~fedseg.inference.sources`         cases from raw folders (preprocessed in memory) or site datasets
* :mod:`~fedseg.inference.predict`         predict, write label maps on the original grid
* :mod:`~fedseg.inference.score`           score a model on labelled cases (validation, evaluate, simulate)
* :mod:`~fedseg.inference.evaluate_model`  predict and score a site dataset split (no image written)
"""
