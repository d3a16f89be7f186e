"""Optional integrations (Dask, ...): each imports its library lazily and says how to install it."""
