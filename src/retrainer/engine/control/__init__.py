"""Control: the controller (a level-triggered reconciliation loop), the daemon that ticks
it, and the alerts it sends."""
