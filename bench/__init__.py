"""runstream's benchmark suite: every performance target, side by side with MLflow and W&B.

``python -m bench`` (what ``make bench`` runs) starts a stack of its own, runs
each figure in :mod:`bench.figures` and prints one table; see ``bench/README.md``.
"""
