"""Runs: one run's steps (load, train, bless, register, deploy), the registry (promote,
rollback, status), the reference profiles stored with each version, and the worker process."""
