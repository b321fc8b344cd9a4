"""What-if replay: an item's recorded inputs folded through a changed definition's ``step()``.

``record`` reads the inputs back out of an audit trail, ``fold`` runs them through the new
definition (pure: no command, no model, no store), and ``report`` sums many items' replays into
what an operator decides on. The store-reading shell is ``statewise.actions.simulation``.
"""
