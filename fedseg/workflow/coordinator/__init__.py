"""The coordinator's round, one concept per module.

:mod:`~.aggregate` (screen a round's updates and combine them: :func:`~.aggregate.aggregate_round`),
:mod:`~.delta_stream` (updates as float64 deltas: norms, running sums, per-tensor combine, direction
cosines), :mod:`~.round_write` (sign and write the next global, the server state, the ledger),
:mod:`~.round_report` (the verdicts and the report), :mod:`~.server_state` (server optimizer state),
:mod:`~.scratch` (private scratch files), :mod:`~.round_lock` (the folder lock and leftover cleanup).
"""
