"""Example projects bundled with retrainer (``retrainer init DIR --example NAME``)."""
