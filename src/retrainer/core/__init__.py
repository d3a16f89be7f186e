"""The pure core of retrainer: domain values, windows, metrics, blessing rules and the clock.

Nothing here does I/O or reads the system time; everything is a function of its inputs, so the
same code runs in the daemon, the tests and the backtest.
"""
