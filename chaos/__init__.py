"""A seeded chaos campaign over the real ``retrainer`` CLI and daemon.

``python -m chaos --minutes 3`` (``make chaos``) builds a small project, then each iteration
picks a random action (a run at a random ``--as-of``, a run killed with SIGKILL by a timer or
at a named fault point, two runs or two daemons at once, commands racing a run, storage
faults through a ``faulty://`` filesystem, a locked or read-only database, a PostgreSQL
restart) and checks the store's invariants after it (:mod:`chaos.invariants`). The summary
counts iterations, kills, faults, violations, duplicate runs and lost records; a violation
prints the seed and the step that reproduce it. See docs/reliability.md.
"""
