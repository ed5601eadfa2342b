"""Hyperparameter search with Optuna (``train.py --optimize``), from one laptop to a cluster.

- ``study.py``: the study: sampler, pruner, workers joining one storage, results;
- ``trials.py``: one trial, a normal run folder per env, pruned from its evaluations;
- ``search_spaces.py`` and ``search_spaces.yaml``: what is searched, per algo;
- ``storage.py``: SQLite by default, any Optuna storage URL, heartbeats for dead workers;
- ``report.py``: best.yaml, the table of trials and the plots.
"""
