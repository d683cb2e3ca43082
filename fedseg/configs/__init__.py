"""The frozen configuration dataclasses a plan serializes (ground layer: any layer may import them).

One module per table of ``plan.toml``: :mod:`~fedseg.configs.model` (``[model]``), :mod:`~fedseg.configs.training`
(``[training]``), :mod:`~fedseg.configs.aggregation` (``[aggregation]``) and :mod:`~fedseg.configs.preprocess`
(``[preprocessing]``). They live below every layer so that the plan (federation) can hold them without importing
training, model or imaging code; import them from their modules.
"""
